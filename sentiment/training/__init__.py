"""The train stage: the network's training loop with validation-based selection, and what it needs.

trainer          the train stage and the epoch loop (selection, early stopping, resume)
run              the run directory: what train writes and every later stage reads
distributed      several processes (torchrun + DDP)
transfer         starting from another run's weights
pretraining      language-model pretraining of the encoder
segments         sentences of the training reviews as extra examples
position_losses  per-position losses (target replication, lexicon regularisation)
calibration      temperature scaling and the decision threshold, fitted on validation
"""
