"""The `prepare` stage: reviews -> labels -> spaCy tokens -> splits -> vocabulary -> token ids.

Output, `data/prepared/<experiment>/`: one Arrow dataset per split (`train`, `validation`,
`test`; columns `text`, `tokens`, `ids`, `label`, `sentences`: the index of each sentence's
first token, from spaCy's sentencizer, and `title`: the title that begins the text, with
`data.title_column`, else empty), `vocab.json` and `manifest.json`, which
records where the data came from, what was dropped and why, the counts and the config. The
directory is written atomically and reused while the config and the source are unchanged.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.artifacts import atomic_directory, environment_versions, read_json
from sentiment.config import ExperimentConfig
from sentiment.data.labels import map_labels, scheme_labels
from sentiment.data.sources import RawSplit, load_source, source_fingerprint
from sentiment.data.splits import stratified_group_split
from sentiment.data.text import Tokenizer
from sentiment.data.vocab import UNK_ID, Vocab
from sentiment.errors import SentimentError
from sentiment.progress import progress_bar
from sentiment.schemas import PreparedManifest, read_record, write_record

SPLITS = ("train", "validation", "test")
FORMAT_VERSION = 3
"""2: the `sentences` column. 3: the `title` column."""
PREPARE_SECTIONS = ("seed", "data", "tokenize", "split", "vocab")


@dataclass
class PreparedData:
    """A prepared dataset on disk, as the later stages read it."""

    directory: Path
    manifest: dict[str, Any]
    vocab: Vocab
    record: PreparedManifest  # manifest.json checked (`sentiment.schemas`); `manifest` is the same file as a dict

    @property
    def labels(self) -> list[str]:
        return self.record.labels

    def split(self, name: str):
        import datasets

        if name not in SPLITS:
            raise SentimentError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return datasets.load_from_disk(str(self.directory / name))


def token_ids(split) -> list[np.ndarray]:
    """A loaded split's token ids as int32 arrays, one per review, read straight from Arrow.

    Much cheaper per access than indexing the `datasets` column, which builds a Python
    list on every lookup: training collates thousands of batches from these.
    """
    return ids_from_column(split.data.column("ids"))


def ids_from_column(column) -> list[np.ndarray]:
    """A pyarrow list<int> column -> one numpy array per row (views into one flat buffer)."""
    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    return np.split(values[offsets[0] : offsets[-1]], offsets[1:-1] - offsets[0])


def prepare(config: ExperimentConfig, force: bool = False, log=print) -> PreparedData:
    """Prepare the experiment's data, or return the cached result when nothing changed."""
    directory = config.prepared_dir
    fingerprint = prepare_fingerprint(config)
    if not force and _is_current(directory, fingerprint):
        log(f"prepared data is up to date: {directory}")
        return load_prepared(directory)

    started = time.perf_counter()
    labels = scheme_labels(config.data.label_scheme)
    source = load_source(config.data, config.paths.data)
    dropped = Counter(source.dropped)
    counts_raw = {name: len(split.texts) for name, split in source.splits.items()}
    rows = {name: _labelled_rows(split, config.data.label_scheme, dropped) for name, split in source.splits.items()}
    if not any(row["text"] for row in rows.values()):
        raise SentimentError(f"{config.data.source}: every text is empty or was dropped; nothing to prepare")

    tokenizer = Tokenizer(lowercase=config.tokenize.lowercase)
    tokenized = {}
    total = sum(len(row["text"]) for row in rows.values())
    with progress_bar(total=total, desc="tokenizing", unit="review") as bar:
        for name, columns in rows.items():
            tokens, sentences = [], []
            for token_list, starts in tokenizer.pipe_with_sentences(columns["text"]):
                tokens.append(token_list)
                sentences.append(starts)
                bar.update(1)
            tokenized[name] = _drop_tokenless({**columns, "tokens": tokens, "sentences": sentences}, dropped)
    tokenize_seconds = time.perf_counter() - started

    splits = _split(tokenized, config, labels)
    _check_every_class(splits["train"]["label"], labels, config)
    vocab = Vocab.build(splits["train"]["tokens"], config.vocab.min_freq, config.vocab.max_size)
    for split in splits.values():
        split["ids"] = [vocab.encode(tokens, config.tokenize.max_len) for tokens in split["tokens"]]

    manifest = {
        "format_version": FORMAT_VERSION,
        "experiment": config.name,
        "fingerprint": fingerprint,
        "source": source.origin,
        "label_scheme": config.data.label_scheme,
        "labels": labels,
        "rows": {"read": counts_raw, "dropped": dict(dropped), "kept": sum(len(s["label"]) for s in splits.values())},
        "counts": {name: _class_counts(split["label"], labels) for name, split in splits.items()},
        "token_lengths": _length_summary(splits, config.tokenize.max_len),
        "sentences": {name: _sentence_summary(split["sentences"]) for name, split in splits.items()},
        "vocab": {"size": len(vocab), "min_freq": config.vocab.min_freq, "max_size": config.vocab.max_size},
        "oov_rate_validation": _oov_rate(splits["validation"]["ids"]),
        "seconds": round(time.perf_counter() - started, 2),
        "tokenize_seconds": round(tokenize_seconds, 2),
        "config": config.to_dict(),
        "versions": environment_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _save(directory, splits, vocab, manifest)
    return load_prepared(directory)


def load_prepared(directory: str | Path) -> PreparedData:
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise SentimentError(f"no prepared data in {directory}; run `sentiment prepare` with this config first")
    record, manifest = read_record(manifest_path, PreparedManifest, what="manifest")
    missing = [name for name in SPLITS if not (directory / name).is_dir()]
    if missing or not (directory / "vocab.json").is_file():
        raise SentimentError(f"{directory} is incomplete (missing {', '.join(missing) or 'vocab.json'}); rerun prepare")
    return PreparedData(
        directory=directory, manifest=manifest, vocab=Vocab.load(directory / "vocab.json"), record=record
    )


def prepare_fingerprint(config: ExperimentConfig) -> str:
    source = source_fingerprint(config.data, config.paths.data)
    return f"v{FORMAT_VERSION}-{config.fingerprint(*PREPARE_SECTIONS)}-{source[:16]}"


def _is_current(directory: Path, fingerprint: str) -> bool:
    try:
        return read_json(directory / "manifest.json").get("fingerprint") == fingerprint
    except SentimentError:
        return False


def _labelled_rows(split: RawSplit, scheme: str, dropped: Counter) -> dict[str, list]:
    """The columns `text`, `title` and `label` (class ids) of the rows that have a text and a class,
    counting (never silently losing) the others."""
    label_ids, dropped_by_value = map_labels(split.labels, scheme)
    for value, count in dropped_by_value.items():
        dropped[f"label_{value}_not_in_{scheme}_scheme"] += count
    titles = split.titles if split.titles is not None else [""] * len(split.texts)
    columns: dict[str, list] = {"text": [], "title": [], "label": []}
    for text, title, label in zip(split.texts, titles, label_ids):
        if label is None:
            continue
        if not text:
            dropped["empty_text"] += 1
            continue
        columns["text"].append(text)
        columns["title"].append(title)
        columns["label"].append(label)
    return columns


def _drop_tokenless(columns: dict[str, list], dropped: Counter) -> dict[str, list]:
    keep = [i for i, token_list in enumerate(columns["tokens"]) if token_list]
    dropped["no_tokens"] += len(columns["tokens"]) - len(keep)
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def _split(tokenized: dict[str, dict], config: ExperimentConfig, labels: list[str]) -> dict[str, dict]:
    """Split `all` into train/validation/test, or carve validation out of the source's own train."""
    if "all" in tokenized:
        pool, held_out = tokenized["all"], {"validation": config.split.validation, "test": config.split.test}
    else:
        pool, held_out = tokenized["train"], {"validation": config.split.validation}
    indices = stratified_group_split(pool["text"], pool["label"], held_out, config.seed, labels)
    splits = {name: {key: [values[i] for i in rows] for key, values in pool.items()} for name, rows in indices.items()}
    if "all" not in tokenized:
        splits["test"] = tokenized["test"]
    return {name: splits[name] for name in SPLITS}


def _check_every_class(train_labels: list[int], labels: list[str], config: ExperimentConfig) -> None:
    """Every class of the scheme needs training examples (the model and the baseline learn each
    one); say so now rather than after the epochs of `train`."""
    counts = _class_counts(train_labels, labels)
    absent = [label for label, count in counts.items() if count == 0]
    if absent:
        shown = ", ".join(f"{label} {count}" for label, count in counts.items())
        raise SentimentError(
            f"{config.data.source}: the training split has no {' or '.join(absent)} reviews "
            f"({shown}); the {config.data.label_scheme} scheme needs examples of every class"
        )


def _class_counts(label_ids: list[int], labels: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=len(labels))
    return {label: int(count) for label, count in zip(labels, counts)}


def _length_summary(splits: dict[str, dict], max_len: int) -> dict[str, Any]:
    lengths = np.array([len(tokens) for split in splits.values() for tokens in split["tokens"]])
    percentiles = {f"p{p}": int(np.percentile(lengths, p)) for p in (50, 90, 95, 99)}
    return {
        **percentiles,
        "max": int(lengths.max()),
        "mean": round(float(lengths.mean()), 1),
        "truncated_share": round(float((lengths > max_len).mean()), 4),
        "max_len": max_len,
    }


def _sentence_summary(sentences: list[list[int]]) -> dict[str, Any]:
    counts = np.array([len(starts) for starts in sentences])
    return {
        "total": int(counts.sum()),
        "mean_per_review": round(float(counts.mean()), 2) if len(counts) else 0.0,
        "single_sentence_share": round(float((counts == 1).mean()), 4) if len(counts) else 0.0,
    }


def sentence_starts(split) -> list[np.ndarray]:
    """A loaded split's sentence starts, one int32 array per review (like `token_ids`)."""
    if "sentences" not in split.column_names:
        raise SentimentError(
            "the prepared data has no sentence column (prepared by an older version); run `sentiment prepare --force`"
        )
    return ids_from_column(split.data.column("sentences"))


def _oov_rate(id_lists: list[list[int]]) -> float:
    total = sum(len(ids) for ids in id_lists)
    unknown = sum(ids.count(UNK_ID) for ids in id_lists)
    return round(unknown / total, 4) if total else 0.0


def _save(directory: Path, splits: dict[str, dict], vocab: Vocab, manifest: dict) -> None:
    import datasets

    datasets.disable_progress_bars()
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ids": datasets.Sequence(datasets.Value("int32")),
            "sentences": datasets.Sequence(datasets.Value("int32")),
            "label": datasets.Value("int64"),
            "title": datasets.Value("string"),
        }
    )
    with atomic_directory(directory) as staging:
        for name, split in splits.items():
            datasets.Dataset.from_dict(split, features=features).save_to_disk(str(staging / name))
        vocab.save(staging / "vocab.json")
        write_record(staging / "manifest.json", PreparedManifest, manifest)
