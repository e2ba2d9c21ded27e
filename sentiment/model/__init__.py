"""The models: the recurrent classifier and what it is built from, and the two reference systems.

recurrent    the bidirectional RNN / GRU / LSTM classifier (ModelSpec, RecurrentClassifier)
embeddings   pretrained word vectors for the embedding layer, and their sentiment refinement
batching     length-bucketed batches and prediction from token ids
tracing      the forward pass traced into TorchScript for scoring on the CPU, where the trace is exact
precision    the forward pass's number format for scoring: float32, or bfloat16 where it is native
gates        the gated cells' per-step gate activations, for explain
classifier   the TextClassifier contract every system meets, and the decision rule
baseline     TF-IDF + logistic regression, saved as JSON + safetensors
vader        VADER, the rule-based lexicon system
"""
