"""The evaluate stage: the model beside the baseline and VADER on the test split, the contrast suite and the out-of-domain sets; and the commands built on it.

evaluate       the evaluate stage: metrics.json, the report, the model card
contrast       the contrast suite (word order and negation), read from the package's resources
out_of_domain  the out-of-domain sentence sets (Hutto & Gilbert 2014)
compare        train and evaluate RNN, GRU and LSTM side by side, on one seed or several
explain        what the gates do on a sentence, word by word
"""
