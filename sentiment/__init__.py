"""Sentiment analysis of product reviews: spaCy tokens, recurrent classifiers, honest reports.

`from sentiment import load_model` gives the scoring API (see `sentiment.serving.inference`); it is
imported lazily so that the command line starts without loading torch.
"""

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from sentiment.serving.inference import load_model

        return load_model
    raise AttributeError(f"module 'sentiment' has no attribute {name!r}")
