"""The train stage: the network's training loop with validation-based selection, and what it needs.

stage               the train stage: members trained, the baseline fitted, the run written
initialise          a model's starting point: seeds, vectors, transfer, pretraining, optimizer
loop                the epoch loop (Trainer, train_while_improving: selection, early stopping)
checkpoints         the per-epoch checkpoint that --resume continues from
run                 the run directory: written at the end of train, read by every later stage
distributed         several processes (torchrun + DDP)
transfer            starting from another run's weights
pretraining         language-model pretraining of the encoder
segments            sentences (and clauses) of the training reviews as extra examples
segment_filter      which of those sentences agree with their review's label (VADER's or the reviews' n-grams' reading)
labelled_sentences  sentences labelled one by one as examples; their held-out part read after training
extra_sentences     sentences of another prepared dataset's training reviews as extra examples
distillation        soft targets for the sentence examples from a finished run (self-distillation)
contrast_rule       the A-but-B rule distilled into the sentence examples (Hu et al. 2016)
position_losses     per-position losses (target replication, lexicon regularisation)
adversarial         adversarial training: each batch again with its word vectors moved against it
interpolation       the best weights mixed with the start, the mix chosen on validation (WiSE-FT)
soup                epoch 2 trained in branches from one point, their weights averaged (a model soup)
calibration         temperature scaling and the decision threshold, fitted on validation
titles              the validation reviews' titles read alone after training (short in-domain texts)
"""
