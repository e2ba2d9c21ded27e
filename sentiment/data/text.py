"""Cleaning, spaCy tokenization and sentence segmentation, shared by every stage that reads text.

`spacy.blank("en")` needs no model download; single-process `tokenizer.pipe` is the fast
path on a small machine (measured: `n_process=2` is 2-35x slower on 2 cores). Sentences come
from spaCy's rule-based `sentencizer` (a sentence ends after `.`, `!`, `?` and the like), also
without a model, so `prepare` and every later reader split a text the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sentiment.errors import SentimentError

if TYPE_CHECKING:
    import numpy as np

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Turn HTML line breaks (IMDB's `<br />`) into spaces and collapse runs of whitespace."""
    return _WHITESPACE.sub(" ", _HTML_BREAK.sub(" ", text)).strip()


class Tokenizer:
    """spaCy's English rule-based tokenizer, optionally lowercasing, whitespace tokens dropped."""

    def __init__(self, lowercase: bool = True):
        import spacy
        from spacy.attrs import LOWER, ORTH

        self.lowercase = lowercase
        tokenizer: Any = spacy.blank("en").tokenizer
        self._tokenizer = tokenizer
        self._attribute = LOWER if lowercase else ORTH
        self._strings = tokenizer.vocab.strings
        self._sentencizer: Any = None

    def __call__(self, text: str) -> list[str]:
        return self._tokens(self._tokenizer(clean_text(text)))

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[list[str]]:
        for doc in self._docs(texts, batch_size):
            yield self._tokens(doc)

    def _docs(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Any]:
        """spaCy docs of the cleaned texts: what every pipe here reads."""
        return self._tokenizer.pipe((clean_text(text) for text in texts), batch_size=batch_size)

    def pipe_with_sentences(
        self, texts: Iterable[str], batch_size: int = 1000, with_texts: bool = False
    ) -> Iterator[tuple]:
        """Tokens as `pipe` gives them, and the index of each sentence's first token in that list;
        with `with_texts`, also each sentence's text (of the cleaned text)."""
        if self._sentencizer is None:
            from spacy.pipeline import Sentencizer

            self._sentencizer = Sentencizer()
        from spacy.attrs import SENT_START

        for doc in self._docs(texts, batch_size):
            doc = self._sentencizer(doc)
            tokens = self._tokens(doc, keep_space=True)
            starts: list[int] = []
            kept: list[str] = []
            pending = False
            for token, start in zip(tokens, doc.to_array(SENT_START).tolist()):
                pending = pending or start == 1
                if token.isspace():
                    continue  # a sentence that starts on whitespace starts at the next real token
                if pending:
                    starts.append(len(kept))
                    pending = False
                kept.append(token)
            if with_texts:
                yield kept, starts, [span.text for span in doc.sents if not span.text.isspace()]
            else:
                yield kept, starts

    def id_lookup(self, words: Sequence[str]) -> dict[int, int]:
        """spaCy's string hash of each word -> its index in `words`, for `pipe_ids`."""
        return {self._strings.add(word): index for index, word in enumerate(words)}

    def pipe_ids(self, texts: Iterable[str], lookup: dict[int, int], unknown: int) -> Iterator[list[int]]:
        """`[lookup[w] for w in pipe(texts)]` (`unknown` for words it lacks) without making the
        strings: spaCy's hashes map straight to ids, and only a word missing from `lookup` is
        looked up, to drop it if it is whitespace as `pipe` does. A third faster than tokens
        then ids, which matters where tokenizing and the forward pass share the cores (`score`)."""
        strings, attribute = self._strings, self._attribute
        for doc in self._docs(texts):
            ids = []
            for key in doc.to_array(attribute).tolist():
                index = lookup.get(key)
                if index is None:
                    if strings[key].isspace():
                        continue
                    index = unknown
                ids.append(index)
            yield ids

    def _tokens(self, doc, keep_space: bool = False) -> list[str]:
        # One array of string hashes per doc is about twice as fast as reading Token objects.
        strings = self._strings
        words = [strings[key] for key in doc.to_array(self._attribute).tolist()]
        return words if keep_space else [word for word in words if not word.isspace()]


WORD, PUNCT, SENTENCE_END, CONNECTIVE = 0, 1, 2, 3
"""Token kinds for `sentence_token_kinds`: what the sentencizer's rule looks at, and the contrast
connectives that also begin a clause."""
CONTRAST_CONNECTIVES = ("but", "however", "although", "though", "yet", "whereas", "except")
"""Words that open a contrasting clause, where a review's verdict so often turns ("not perfect,
but pretty good"): segment boundaries for `model.head = "clauses"`, as elementary discourse
units are for MILNET (Angelidis & Lapata 2018)."""


def sentence_token_kinds(words, connectives: tuple[str, ...] = ()) -> np.ndarray:
    """Per vocabulary word: SENTENCE_END for the sentencizer's punctuation characters (`.`, `!`,
    `?`, ...), PUNCT for other punctuation, CONNECTIVE for `connectives` (in any case), WORD
    otherwise. With these a model can split token ids into sentences by the sentencizer's own
    rule (`sentiment.model.recurrent.sentence_starts`): a sentence starts at the first word after a
    sentence-end character; a clause also starts at a connective."""
    import numpy as np
    import spacy
    from spacy.pipeline import Sentencizer

    lexemes = spacy.blank("en").vocab
    ends = set(Sentencizer.default_punct_chars)
    kinds = np.zeros(len(words), dtype=np.int64)
    connective = set(connectives)
    for index, word in enumerate(words):
        if word.lower() in connective:
            kinds[index] = CONNECTIVE
        elif word in ends:
            kinds[index] = SENTENCE_END
        elif word and word not in ("<pad>", "<unk>") and lexemes[word].is_punct:
            kinds[index] = PUNCT
    return kinds


def sentence_spans(starts, length: int, min_tokens: int = 1) -> list[tuple[int, int]]:
    """(begin, end) token ranges of the sentences that begin at `starts`, within the first `length`
    tokens (the encoded ids may be truncated), keeping those of at least `min_tokens` tokens."""
    bounds = [int(s) for s in starts if s < length] + [length]
    return [(begin, end) for begin, end in zip(bounds, bounds[1:]) if end - begin >= min_tokens]


# ---- what counts as text: one contract for the model, the baseline, `score` and `serve` ------

ERRORS = {  # the `error` reasons of `score`, `serve` and the API's SentimentError
    "empty_text": "the review is empty or only whitespace and control characters (not scored)",
    "missing_text": "the record has no text value: the field is absent or null (not scored)",
    "not_text": "the text value is not a string (a JSON number, boolean, list or object; a non-text "
    "Parquet column) (not scored)",
    "no_tokens": "the tokenizer found no tokens in the review (not scored)",
    "invalid_utf8": "the review has bytes that are not valid in the file's encoding; they are replaced by U+FFFD "
    "(not scored)",
    "invalid_json": "the .jsonl line is not a JSON object (not scored)",
    "truncated": "the review has more tokens than the model's max_len; scored on the first max_len",
}

NO_TEXT = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]*")
"""Whitespace, control characters and zero-width marks: a review made only of these is empty."""


def text_value(value: Any) -> tuple[str, str | None]:
    """A cell as review text, and why it cannot be scored: `missing_text` (absent, null), `not_text`
    (a number, boolean, list...), `invalid_utf8` where bytes had to be replaced. Bytes (a Parquet
    binary column) are read as UTF-8."""
    if value is None:
        return "", "missing_text"
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            return value.decode("utf-8", "replace"), "invalid_utf8"
    if not isinstance(value, str):
        return "", "not_text"
    return repair_text(value)


def repair_text(value: Any) -> tuple[Any, str | None]:
    """Undo `surrogateescape` (undecodable bytes) and lone JSON surrogates: U+FFFD instead, flagged."""
    if not isinstance(value, str) or value.isascii():
        return value, None
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "invalid_utf8"
    except UnicodeEncodeError:  # a surrogate that did not come from a byte (a JSON escape)
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value), "invalid_utf8"


def text_problem(value: Any) -> str | None:
    """Why a value given to `predict` cannot be scored (an `ERRORS` key), or None: the one contract
    of the model, the baseline and `score` for None, non-strings, bytes and empty texts."""
    if value is None:
        return "missing_text"
    if not isinstance(value, str):
        return "not_text"
    if NO_TEXT.fullmatch(value):
        return "empty_text"
    return repair_text(value)[1]


def check_texts(texts: Any) -> list[str]:
    """`texts` as a list of scorable strings, or one SentimentError naming the first that is not."""
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise SentimentError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for index, text in enumerate(texts):
        problem = text_problem(text)
        if problem is not None:
            shown = type(text).__name__ if problem == "not_text" else repr(text)[:40]
            raise SentimentError(
                f"text {index} ({shown}) cannot be scored ({problem}): {ERRORS[problem].removesuffix(' (not scored)')}"
            )
    return texts
