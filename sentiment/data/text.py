"""Cleaning, spaCy tokenization and sentence segmentation, shared by every stage that reads text.

`spacy.blank("en")` needs no model download; single-process `tokenizer.pipe` is the fast
path on a small machine (measured: `n_process=2` is 2-35x slower on 2 cores). Sentences come
from spaCy's rule-based `sentencizer` (a sentence ends after `.`, `!`, `?` and the like), also
without a model, so `prepare` and every later reader split a text the same way. `WordIds` reads
texts straight into vocabulary ids, the same ids faster, for scoring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from sentiment.errors import SentimentError

if TYPE_CHECKING:
    import numpy as np

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Turn HTML line breaks (IMDB's `<br />`) into spaces and collapse runs of whitespace."""
    return " ".join(_chunks(text))


def _chunks(text: str) -> list[str]:
    """The whitespace-separated chunks of the cleaned text: what spaCy tokenizes one at a time."""
    return (_HTML_BREAK.sub(" ", text) if "<" in text else text).split()


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

    def word_ids(self, words: Sequence[str], unknown: int) -> WordIds:
        """Texts straight to indices in `words` (`unknown` for words it lacks), as `pipe` tokenizes."""
        return WordIds(self, words, unknown)

    def _tokens(self, doc, keep_space: bool = False) -> list[str]:
        # One array of string hashes per doc is about twice as fast as reading Token objects.
        strings = self._strings
        words = [strings[key] for key in doc.to_array(self._attribute).tolist()]
        return words if keep_space else [word for word in words if not word.isspace()]


class WordIds:
    """Texts to vocabulary ids exactly as `Tokenizer.pipe` then a lookup would give them, fast
    enough that tokenizing no longer holds back `score` (where it shares the cores with the model).

    spaCy tokenizes each whitespace-separated chunk of a text on its own, with one exception: its
    special cases that hold affix characters (`'bout`, `(:`, `a.m.`) are found by a matcher over
    the whole text, whose matches may reach across a space (`talkin' 'bout` matches `''` and so
    loses `'bout`). So this keeps each chunk's ids (chunk -> ids: a new chunk of ASCII letters read
    as the one token it is, the other new chunks of a batch of texts by one spaCy call, one per
    line), reads a text as a split and dictionary lookups, and
    sends a text through spaCy whole only where two neighbouring chunks could start such a match
    (`_CrossChunkCases`). At `max_chunks` entries the memo starts again, which bounds memory.
    One thread at a time, like the spaCy tokenizer it calls (`score` tokenizes under a lock).
    """

    def __init__(self, tokenizer: Tokenizer, words: Sequence[str], unknown: int, max_chunks: int = 200_000):
        self._spacy = _lean_spacy_tokenizer(tokenizer.lowercase)
        self._attribute = tokenizer._attribute
        strings = self._spacy.vocab.strings
        # spaCy's string hash of each word -> its index in `words`: ids without making strings.
        self._lookup = {strings.add(word): index for index, word in enumerate(words)}
        self._index = {word: index for index, word in enumerate(words)}
        self._lowercase = tokenizer.lowercase
        self._unknown = unknown
        self._cases = _CrossChunkCases(self._spacy)
        self._memo: dict[str, tuple[int, ...]] = {}
        # The few chunks whose first or last token could be part of a match across a space.
        self._starts: dict[str, frozenset[str]] = {}
        self._ends: dict[str, frozenset[str]] = {}
        self.max_chunks = max_chunks

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[list[int]]:
        memo, starts = self._memo, self._starts
        texts = iter(texts)
        while batch := [_chunks(text) for text in islice(texts, batch_size)]:
            unseen = set(chain.from_iterable(batch)).difference(memo)
            if len(memo) + len(unseen) > self.max_chunks:
                for kept in (memo, starts, self._ends):
                    kept.clear()
                unseen = set(chain.from_iterable(batch))
            if unseen:
                self._learn(list(unseen))
            read = []  # the whole batch before the first yield: another pipe may reset the memo
            for chunks in batch:
                ids = list(chain.from_iterable(map(memo.__getitem__, chunks)))
                edges = starts.keys() & chunks  # chunks that could continue a match from their left
                if edges and self._crossing(chunks, edges):
                    ids = self._ids(self._spacy(" ".join(chunks)))
                read.append(ids)
            yield from read

    def _crossing(self, chunks: list[str], edges: Iterable[str]) -> bool:
        """Whether a special case could match across one of the spaces between these chunks: at
        a chunk in `edges`, from the chunk before it."""
        starts, ends, pairs = self._starts, self._ends, self._cases.pairs
        for chunk in edges:
            firsts = starts[chunk]
            at = 0
            while (at := _index(chunks, chunk, at + 1)) > 0:
                lasts = ends.get(chunks[at - 1])
                if lasts and any((last, first) in pairs for last in lasts for first in firsts):
                    return True
        return False

    def _ids(self, doc) -> list[int]:
        lookup, unknown = self._lookup, self._unknown
        return [lookup.get(key, unknown) for key in doc.to_array(self._attribute).tolist()]

    def _learn(self, chunks: list[str]) -> None:
        """Each chunk's ids and the tokens at its edges that could begin or end a special case
        reaching into a neighbour. A chunk of ASCII letters that is not a special case ("cannot",
        "gonna") is one token, the chunk itself: every prefix, suffix and infix rule of spaCy's
        English tokenizer needs a character other than a letter, and so does a URL. The others go
        through one spaCy call, one chunk per line (a line break is a token of its own, which no
        special case reaches across)."""
        rules, index, unknown = self._spacy.rules, self._index, self._unknown
        hard = []
        for chunk in chunks:
            if not (chunk.isascii() and chunk.isalpha()) or chunk in rules:
                hard.append(chunk)
                continue
            self._memo[chunk] = (index.get(chunk.lower() if self._lowercase else chunk, unknown),)
            self._edges(chunk, chunk, chunk)
        if hard:
            self._learn_from_spacy(hard)

    def _learn_from_spacy(self, chunks: list[str]) -> None:
        from spacy.attrs import ORTH

        doc = self._spacy("\n".join(chunks))
        ids, orths = self._ids(doc), doc.to_array(ORTH).tolist()
        strings, newline = self._spacy.vocab.strings, self._cases.newline
        begin, last_line = 0, len(chunks) - 1
        for line, chunk in enumerate(chunks):
            end = orths.index(newline, begin) if line < last_line else len(orths)
            self._memo[chunk] = tuple(ids[begin:end])
            self._edges(chunk, strings[orths[begin]], strings[orths[end - 1]])
            begin = end + 1
        if begin != len(orths) + 1:  # cannot happen for chunks without whitespace; stay exact anyway
            raise AssertionError(f"{len(chunks)} chunks did not tokenize into as many lines")

    def _edges(self, chunk: str, first: str, last: str) -> None:
        """Keep what a special case across a space could see of this chunk (its first and last token)."""
        firsts, lasts = self._cases.starts(chunk, first), self._cases.ends(chunk, last)
        if firsts:
            self._starts[chunk] = firsts
        if lasts:
            self._ends[chunk] = lasts


class _CrossChunkCases:
    """spaCy's special cases whose match can span two chunks: the patterns of two or more tokens
    that its tokenizer hands to a matcher over the whole text (those holding affix characters).
    A match across a space needs one pattern's consecutive tokens on either side of it: `pairs`."""

    def __init__(self, spacy_tokenizer: Any):
        from spacy.tokenizer import Tokenizer as SpacyTokenizer

        plain = SpacyTokenizer(  # the affix rules alone: how the matcher sees a special case
            spacy_tokenizer.vocab,
            prefix_search=spacy_tokenizer.prefix_search,
            suffix_search=spacy_tokenizer.suffix_search,
            infix_finditer=spacy_tokenizer.infix_finditer,
            token_match=spacy_tokenizer.token_match,
            url_match=spacy_tokenizer.url_match,
        )
        t = spacy_tokenizer
        patterns = {}
        for case in t.rules:
            matched = not t.faster_heuristics or t.find_prefix(case) or t.find_infix(case) or t.find_suffix(case)
            tokens = [token.text for token in plain(case)] if matched or " " in case else []
            if len(tokens) > 1:
                patterns[case] = tokens
        self.pairs = {pair for tokens in patterns.values() for pair in zip(tokens, tokens[1:])}
        self._firsts = {first for first, _ in self.pairs}
        self._seconds = {second for _, second in self.pairs}
        # Each case's first and last pattern token, by the case's length: a chunk's opening (closing)
        # characters of each length are one dict lookup, where most chunks begin or end no case.
        self._heads: dict[int, dict[str, str]] = {}
        self._tails: dict[int, dict[str, str]] = {}
        for case, tokens in patterns.items():
            self._heads.setdefault(len(case), {})[case] = tokens[0]
            self._tails.setdefault(len(case), {})[case] = tokens[-1]
        self.newline = spacy_tokenizer.vocab.strings.add("\n")

    def starts(self, chunk: str, first: str) -> frozenset[str]:
        """What a match could see as this chunk's first token, where that continues a pattern: its
        first token, or a special case's first pattern token where one begins the chunk."""
        tokens = [token for n, cases in self._heads.items() if (token := cases.get(chunk[:n])) is not None]
        if not tokens:
            return frozenset((first,)) if first in self._seconds else _NOTHING
        return frozenset({first, *tokens} & self._seconds)

    def ends(self, chunk: str, last: str) -> frozenset[str]:
        """What a match could see as this chunk's last token, where a pattern goes on from it."""
        tokens = [token for n, cases in self._tails.items() if (token := cases.get(chunk[-n:])) is not None]
        if not tokens:
            return frozenset((last,)) if last in self._firsts else _NOTHING
        return frozenset({last, *tokens} & self._firsts)


_NOTHING: frozenset[str] = frozenset()


def _lean_spacy_tokenizer(lowercase: bool) -> Any:
    """spaCy's English tokenizer (the same rules, so the same tokens) on a vocabulary that computes
    for each new word only the attribute `WordIds` reads, its lowercase form (none where it reads
    the word as written): spaCy's English vocabulary computes 23 in Python (shape, stop word,
    like_num...), about a seventh of what reading new text cost. A vocabulary of its own, so the
    `Tokenizer` that splits sentences (its sentencizer reads `is_punct`) keeps every attribute."""
    import spacy
    from spacy.attrs import LOWER

    tokenizer: Any = spacy.blank("en").tokenizer
    getters = tokenizer.vocab.lex_attr_getters
    tokenizer.vocab.lex_attr_getters = {LOWER: getters[LOWER]} if lowercase else {}
    return tokenizer


def _index(items: list[str], item: str, start: int) -> int:
    """`items.index(item, start)`, or -1 where it does not occur from `start` on."""
    try:
        return items.index(item, start)
    except ValueError:
        return -1


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
