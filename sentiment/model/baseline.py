"""The bag-of-words baseline: TF-IDF over word 1-2 grams plus logistic regression.

Inputs are token lists already produced by the project's spaCy tokenizer, so the
vectorizer never re-tokenizes or lowercases. The saved form is two plain files
with no pickle (``baseline.json`` and ``baseline.safetensors``); loading never
executes code from disk and does not depend on scikit-learn's private object
layout, so a model saved with one scikit-learn version scores identically under
another.

Predictions always come from scikit-learn's own objects: the fitted ``TfidfVectorizer`` and
``LogisticRegression`` after :meth:`BagOfWordsBaseline.fit`, and after
:meth:`BagOfWordsBaseline.load` the same two classes rebuilt from the saved arrays (vocabulary,
``idf_``, ``coef_``, ``intercept_``), so a loaded model scores exactly as the fitted one did
and there is no copy of scikit-learn's arithmetic to keep in step.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import sklearn
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from sentiment import metrics
from sentiment.artifacts import atomic_directory
from sentiment.errors import SentimentError, os_error

__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "WEIGHTS_FILE", "BagOfWordsBaseline", "word_ngrams"]

CONFIG_FILE = "baseline.json"
WEIGHTS_FILE = "baseline.safetensors"
FORMAT_VERSION = 1
"""Bumped whenever the meaning of the saved files changes; :meth:`BagOfWordsBaseline.load` checks it."""

_SELECT_METRICS = ("macro_f1", "accuracy")
_CLASS_WEIGHTS = (None, "balanced")


def word_ngrams(tokens: Sequence[str], ngram_range: tuple[int, int] = (1, 2)) -> list[str]:
    """All contiguous n-grams of ``tokens`` for n in ``ngram_range``, joined with one space.

    This is the vectorizer's analyzer, at fit time and in a loaded model alike, so
    the two can never disagree about what a feature is.
    The joining matches scikit-learn's word n-grams (and the saved vocabulary
    keys). A token that itself contains a space can collide with a bigram; it
    does so identically at fit and load time.
    """
    low, high = ngram_range
    return [" ".join(tokens[start : start + n]) for n in range(low, high + 1) for start in range(len(tokens) - n + 1)]


def _check_token_lists(token_lists: Any, name: str) -> list[list[str]]:
    """Reject raw strings early: iterating a string would silently yield characters as tokens."""
    if isinstance(token_lists, (str, bytes)) or not isinstance(token_lists, Iterable):
        raise SentimentError(f"{name} must be a list of token lists, got {type(token_lists).__name__}")
    checked = []
    for i, tokens in enumerate(token_lists):
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
            raise SentimentError(
                f"{name}[{i}] must be a list of tokens, got {type(tokens).__name__}; tokenize the text first"
            )
        tokens = list(tokens)
        if not all(isinstance(token, str) for token in tokens):
            raise SentimentError(f"{name}[{i}] must contain only string tokens")
        checked.append(tokens)
    return checked


@dataclass(frozen=True)
class _FittedPipeline:
    """scikit-learn's fitted vectorizer and regression: the one scoring path for fitted and loaded models."""

    vectorizer: TfidfVectorizer
    model: LogisticRegression
    ngram_range: tuple[int, int]
    sublinear_tf: bool

    @property
    def vocabulary(self) -> dict[str, int]:
        return {str(term): int(column) for term, column in self.vectorizer.vocabulary_.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        """What is saved: idf (n_features,), coef (1 or k, n_features), intercept (1 or k,)."""
        return {
            "idf": np.ascontiguousarray(self.vectorizer.idf_, dtype=np.float64),
            "coef": np.ascontiguousarray(self.model.coef_, dtype=np.float64),
            "intercept": np.ascontiguousarray(self.model.intercept_, dtype=np.float64),
        }

    def predict_proba(self, token_lists: list[list[str]]) -> np.ndarray:
        return self.model.predict_proba(self.vectorizer.transform(token_lists))


def _vectorizer(ngram_range: tuple[int, int], sublinear_tf: bool, min_df: int = 1, vocabulary=None) -> TfidfVectorizer:
    """A callable analyzer keeps scikit-learn from re-tokenizing or lowercasing spaCy tokens."""
    return TfidfVectorizer(
        analyzer=partial(word_ngrams, ngram_range=ngram_range),
        min_df=min_df,
        sublinear_tf=sublinear_tf,
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        dtype=np.float64,
        vocabulary=vocabulary,
    )


def _rebuilt_pipeline(
    vocabulary: dict[str, int],
    arrays: dict[str, np.ndarray],
    num_classes: int,
    ngram_range: tuple[int, int],
    sublinear_tf: bool,
) -> _FittedPipeline:
    """scikit-learn's two objects in the fitted state, from saved arrays (no pickle)."""
    vectorizer = _vectorizer(ngram_range, sublinear_tf, vocabulary=vocabulary)
    vectorizer.idf_ = arrays["idf"]  # the documented setter: builds the fitted TfidfTransformer
    model = LogisticRegression()
    model.classes_ = np.arange(num_classes)
    model.coef_, model.intercept_ = arrays["coef"], arrays["intercept"]
    model.n_features_in_ = len(arrays["idf"])
    return _FittedPipeline(vectorizer, model, ngram_range, sublinear_tf)


class BagOfWordsBaseline:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression, with C picked on validation.

    Typical use::

        model = BagOfWordsBaseline().fit(train_tokens, train_y, val_tokens, val_y, labels=["neg", "pos"])
        model.save("runs/baseline")
        probs = BagOfWordsBaseline.load("runs/baseline").predict_proba(test_tokens)

    After :meth:`fit` or :meth:`load`: ``labels``, ``chosen_c``, ``validation``
    (one ``{C, macro_f1, accuracy, converged}`` row per C tried) and
    ``settings`` describe the model.
    """

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 2,
        sublinear_tf: bool = True,
        max_iter: int = 2000,
    ) -> None:
        low, high = ngram_range
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise SentimentError(f"ngram_range must be (low, high) with 1 <= low <= high, got {ngram_range!r}")
        if isinstance(min_df, bool) or not isinstance(min_df, int) or min_df < 1:
            raise SentimentError(f"min_df must be a positive integer document count, got {min_df!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise SentimentError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.ngram_range = (low, high)
        self.min_df = min_df
        self.sublinear_tf = bool(sublinear_tf)
        self.max_iter = max_iter
        self.labels: list[str] = []
        self.chosen_c: float | None = None
        self.validation: list[dict[str, Any]] = []
        self.settings: dict[str, Any] = {}
        self._pipeline: _FittedPipeline | None = None

    # ------------------------------------------------------------------ fit --

    def fit(
        self,
        train_tokens: Sequence[Sequence[str]],
        train_labels: Sequence[int | str],
        val_tokens: Sequence[Sequence[str]],
        val_labels: Sequence[int | str],
        labels: Sequence[str],
        c_grid: Sequence[float] = (0.25, 1, 4, 16),
        select_metric: str = "macro_f1",
        seed: int = 0,
        class_weight: str | None | Sequence[str | None] = None,
    ) -> BagOfWordsBaseline:
        """Fit the vectorizer on training tokens only, one logistic regression per C, keep the best on validation.

        ``class_weight`` is None, ``"balanced"``, or a sequence of both to choose between on
        validation too (balanced weights matter for skewed data scored by macro-F1).

        ``train_labels`` / ``val_labels`` are label names from ``labels`` or
        their integer indices. C is chosen by ``select_metric`` (``"macro_f1"``
        or ``"accuracy"``) on the validation split; ties go to the smaller C,
        the stronger regularization. Nothing is refit on train + validation, so
        the validation scores stay honest estimates for the chosen model.
        """
        labels = _check_labels(labels)
        if select_metric not in _SELECT_METRICS:
            raise SentimentError(f"select_metric must be one of {list(_SELECT_METRICS)}, got {select_metric!r}")
        weight_grid: list[str | None] = (
            list(class_weight) if isinstance(class_weight, (list, tuple)) else [cast(str | None, class_weight)]
        )
        if not weight_grid or any(weight not in _CLASS_WEIGHTS for weight in weight_grid):
            raise SentimentError(f"class_weight must be None or 'balanced' (or a list of them), got {class_weight!r}")
        grid = _check_c_grid(c_grid)
        train_tokens = _check_token_lists(train_tokens, "train_tokens")
        val_tokens = _check_token_lists(val_tokens, "val_tokens")
        y_train = _encode_labels(train_labels, labels, "train_labels", len(train_tokens))
        y_val = _encode_labels(val_labels, labels, "val_labels", len(val_tokens))
        if len(y_val) == 0:
            raise SentimentError("the validation split is empty; C cannot be chosen without it")
        missing = sorted(set(range(len(labels))) - set(y_train.tolist()))
        if missing:
            absent = [labels[i] for i in missing]
            raise SentimentError(f"training labels never contain {absent}; every class needs examples")

        vectorizer = _vectorizer(self.ngram_range, self.sublinear_tf, self.min_df)
        try:
            x_train = vectorizer.fit_transform(train_tokens)
        except ValueError as error:  # empty vocabulary after min_df pruning
            raise SentimentError(
                f"no n-gram occurs in at least min_df={self.min_df} training documents ({error}); "
                "use more training data or a lower min_df"
            ) from error
        x_val = vectorizer.transform(val_tokens)

        table: list[dict[str, Any]] = []
        best_model, best_c, best_score, best_weight = None, grid[0], -np.inf, weight_grid[0]
        for weight, c in ((weight, c) for weight in weight_grid for c in grid):
            model, converged = self._fit_one(x_train, y_train, c, seed, weight)
            val_pred = model.predict(x_val)
            row: dict[str, Any] = {
                "C": c,
                "class_weight": weight,
                "macro_f1": metrics.macro_f1(y_val, val_pred),
                "accuracy": metrics.accuracy(y_val, val_pred),
                "converged": converged,
            }
            table.append(row)
            score = float(row[select_metric])
            if score > best_score:  # strict: ties keep the smaller C seen first
                best_model, best_c, best_score, best_weight = model, c, score, weight
        assert best_model is not None  # the grid is non-empty and every score beats -inf

        self.labels = labels
        self.chosen_c = best_c
        self.validation = table
        self.settings = {
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "sublinear_tf": self.sublinear_tf,
            "norm": "l2",
            "smooth_idf": True,
            "max_iter": self.max_iter,
            "class_weight": best_weight,
            "c_grid": grid,
            "select_metric": select_metric,
            "seed": seed,
            "n_train": len(train_tokens),
            "n_validation": len(val_tokens),
        }
        self._pipeline = _FittedPipeline(vectorizer, best_model, self.ngram_range, self.sublinear_tf)
        return self

    def _fit_one(
        self, x_train: sp.spmatrix, y_train: np.ndarray, c: float, seed: int, class_weight: str | None
    ) -> tuple[LogisticRegression, bool]:
        """One L2 logistic regression (lbfgs: multinomial for > 2 classes); reports convergence instead of warning."""
        model = LogisticRegression(C=c, max_iter=self.max_iter, class_weight=class_weight, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x_train, y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return model, converged

    # -------------------------------------------------------------- predict --

    def predict_proba(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """``(n, k)`` float64 probabilities, columns in the order of ``labels``."""
        return self._require_fitted().predict_proba(_check_token_lists(token_lists, "token_lists"))

    def predict(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Predicted class indices into ``labels`` (arg-max of :meth:`predict_proba`)."""
        return self.predict_proba(token_lists).argmax(axis=1)

    def _require_fitted(self) -> _FittedPipeline:
        if self._pipeline is None:
            raise SentimentError("the baseline is not fitted; call fit() or BagOfWordsBaseline.load() first")
        return self._pipeline

    # ---------------------------------------------------------- save / load --

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``baseline.json`` + ``baseline.safetensors`` into ``directory`` atomically, without pickle.

        Files are written into a temporary sibling directory which is then
        renamed into place, so an interrupted save never leaves a half-written
        model. An existing model directory is replaced; a directory holding
        anything else is refused rather than deleted.
        """
        pipeline = self._require_fitted()
        target = Path(os.path.abspath(directory))  # normalizes "." and "..", so the sibling has a real parent
        _check_replaceable(target)
        try:
            with atomic_directory(target) as staging:
                self._write_files(staging, pipeline)
        except OSError as error:
            raise os_error(f"cannot save the baseline to {target}", error) from None
        return target

    def _write_files(self, directory: Path, pipeline: _FittedPipeline) -> None:
        config = {
            "format": "sentiment.BagOfWordsBaseline",
            "format_version": FORMAT_VERSION,
            "labels": self.labels,
            "chosen_c": self.chosen_c,
            "ngram_range": list(pipeline.ngram_range),
            "sublinear_tf": pipeline.sublinear_tf,
            "settings": self.settings,
            "validation": self.validation,
            "sklearn_version": sklearn.__version__,
            "vocabulary": dict(sorted(pipeline.vocabulary.items(), key=lambda item: item[1])),
        }
        config_path = directory / CONFIG_FILE
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=1, allow_nan=False)  # ASCII escapes survive any token
            handle.flush()
            os.fsync(handle.fileno())
        weights_path = directory / WEIGHTS_FILE
        save_file(pipeline.arrays(), weights_path)
        _fsync_file(weights_path)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BagOfWordsBaseline:
        """Rebuild a saved baseline as scikit-learn objects; it scores exactly as the saved model did."""
        root = Path(directory)
        if not root.exists():
            raise SentimentError(f"baseline directory {root} does not exist")
        if not root.is_dir():
            raise SentimentError(f"baseline path {root} is not a directory")
        config = _read_config(root / CONFIG_FILE)
        tensors = _read_weights(root / WEIGHTS_FILE)
        labels = config["labels"]
        pipeline = _pipeline_from_saved(config, tensors, root)

        settings = config.get("settings", {})
        if not isinstance(settings, dict):
            raise SentimentError(f"{root / CONFIG_FILE}: 'settings' must be a mapping")
        model = cls(
            ngram_range=pipeline.ngram_range,
            min_df=int(settings.get("min_df", 2)),
            sublinear_tf=pipeline.sublinear_tf,
            max_iter=int(settings.get("max_iter", 2000)),
        )
        model.labels = list(labels)
        model.chosen_c = config.get("chosen_c")
        model.validation = list(config.get("validation", []))
        model.settings = dict(settings)
        model._pipeline = pipeline
        return model


# ----------------------------------------------------------------- helpers --


def _check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise SentimentError(f"labels must be a list of class names, got the string {labels!r}")
    labels = list(labels)
    if len(labels) < 2 or not all(isinstance(label, str) and label for label in labels):
        raise SentimentError(f"labels must be at least two non-empty class names, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise SentimentError(f"labels must be unique, got {labels!r}")
    return labels


def _check_c_grid(c_grid: Sequence[float]) -> list[float]:
    """Sorted ascending, so the strict '>' in fit breaks ties toward the smaller C."""
    try:
        grid = sorted({float(c) for c in c_grid})
    except (TypeError, ValueError) as error:
        raise SentimentError(f"c_grid must be a list of positive numbers, got {c_grid!r}") from error
    if not grid or not all(np.isfinite(c) and c > 0 for c in grid):
        raise SentimentError(f"c_grid must be a non-empty list of positive numbers, got {c_grid!r}")
    return grid


def _encode_labels(values: Sequence[int | str], labels: list[str], name: str, expected: int) -> np.ndarray:
    """Accept label names or integer indices; anything else is a user mistake worth naming."""
    values = list(values)
    if len(values) != expected:
        raise SentimentError(f"{name} has {len(values)} entries but there are {expected} token lists")
    index = {label: i for i, label in enumerate(labels)}
    encoded = []
    for value in values:
        if isinstance(value, str):
            if value not in index:
                raise SentimentError(f"{name} contains {value!r}, which is not one of the labels {labels}")
            encoded.append(index[value])
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(labels):
            encoded.append(int(value))
        else:
            raise SentimentError(f"{name} contains {value!r}; expected a label name or an index below {len(labels)}")
    return np.asarray(encoded, dtype=np.int64)


def _check_replaceable(target: Path) -> None:
    """Only an empty directory or a previous baseline save may be replaced; never delete unrelated files."""
    if not target.exists():
        return
    if not target.is_dir():
        raise SentimentError(f"cannot save the baseline to {target}: it exists and is not a directory")
    unexpected = sorted(p.name for p in target.iterdir() if p.name not in (CONFIG_FILE, WEIGHTS_FILE))
    if unexpected:
        raise SentimentError(
            f"refusing to replace {target}: it holds files that are not a saved baseline ({', '.join(unexpected[:5])})"
        )


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SentimentError(f"baseline directory {path.parent} is missing {path.name}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SentimentError(f"{path} is corrupt (not valid JSON: {error})") from error
    if not isinstance(config, dict) or config.get("format") != "sentiment.BagOfWordsBaseline":
        raise SentimentError(f"{path} is not a saved BagOfWordsBaseline")
    if config.get("format_version") != FORMAT_VERSION:
        raise SentimentError(
            f"{path} has format_version {config.get('format_version')!r}; this code reads version {FORMAT_VERSION}"
        )
    for key in ("labels", "vocabulary", "ngram_range", "sublinear_tf"):
        if key not in config:
            raise SentimentError(f"{path} is missing the {key!r} entry")
    return config


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SentimentError(f"baseline directory {path.parent} is missing {path.name}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise SentimentError(f"{path} is corrupt (cannot read safetensors: {error})") from error
    for key in ("idf", "coef", "intercept"):
        if key not in tensors:
            raise SentimentError(f"{path} is missing the {key!r} tensor")
        if tensors[key].dtype != np.float64:
            raise SentimentError(f"{path}: tensor {key!r} must be float64, got {tensors[key].dtype}")
        if not np.isfinite(tensors[key]).all():
            raise SentimentError(f"{path}: tensor {key!r} holds NaN or infinite values; the baseline is corrupt")
    return tensors


def _pipeline_from_saved(config: dict[str, Any], tensors: dict[str, np.ndarray], root: Path) -> _FittedPipeline:
    """Cross-check the JSON and tensor shapes so a mismatched pair fails loudly instead of mis-scoring."""
    labels = config["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(label, str) for label in labels):
        raise SentimentError(f"{root / CONFIG_FILE}: 'labels' must be a list of at least two class names")
    ngram_range = config["ngram_range"]
    if not (isinstance(ngram_range, list) and len(ngram_range) == 2 and all(isinstance(n, int) for n in ngram_range)):
        raise SentimentError(f"{root / CONFIG_FILE}: 'ngram_range' must be two integers")
    vocabulary = config["vocabulary"]
    idf, coef, intercept = tensors["idf"], tensors["coef"], tensors["intercept"]
    n_features = len(idf)
    if (
        not isinstance(vocabulary, dict)
        or not all(type(column) is int for column in vocabulary.values())
        or sorted(vocabulary.values()) != list(range(n_features))
    ):
        raise SentimentError(
            f"{root}: the vocabulary in {CONFIG_FILE} does not match the {n_features} idf weights in {WEIGHTS_FILE}"
        )
    rows = 1 if len(labels) == 2 else len(labels)
    if idf.ndim != 1 or coef.shape != (rows, n_features) or intercept.shape != (rows,):
        raise SentimentError(
            f"{root}: {WEIGHTS_FILE} shapes idf={idf.shape}, coef={coef.shape}, intercept={intercept.shape} "
            f"do not fit {len(labels)} labels and {n_features} features"
        )
    return _rebuilt_pipeline(
        vocabulary,
        {"idf": idf, "coef": coef, "intercept": intercept},
        len(labels),
        (ngram_range[0], ngram_range[1]),
        bool(config["sublinear_tf"]),
    )
