"""Sentiment analysis of product reviews: spaCy tokens, recurrent classifiers, honest reports."""

__version__ = "0.1.0"
