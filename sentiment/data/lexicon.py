"""A sentiment lexicon and a negator list for training: VADER's (Hutto & Gilbert 2014), as the
`vaderSentiment` package ships them (7,500 human-rated words and emoticons, valence -4 to +4,
and its negators).

Two training levers read it, both opt-in and both on the training side only:

* `model.refine_vectors = "vader"`: pretrained word vectors moved towards the lexicon words of
  like valence among their nearest neighbours (Yu et al. 2017, `refine_vectors` here);
* `training.lexicon_regularization`: the per-position distributions of the recurrent states
  must change little at a word the lexicon does not rate, move by a learned drift at a rated
  word, and flip by a learned map at a negator (Qian et al. 2017, `sentiment.training.position_losses`).

Two model options read it too, so a saved model keeps what they read with its weights:

* `model.lexicon_input = "vader"`: each word's rating and its negator and connective flags are
  input features beside its vector (`word_features` here), and the lexicon's words the
  vocabulary lacks are added to it (`lexicon_words`);
* `model.negation_scope` (the negators alone, `negation_roles` here): the words after a negator,
  up to the next punctuation mark or contrast connective, are read through a learned map
  (`sentiment.model.recurrent.negation_scope`).

Tokens are matched lowercased. spaCy splits "don't" into "do" + "n't", so "n't" counts as a
negator beside VADER's own list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sentiment.data.text import CONTRAST_CONNECTIVES, WORD, sentence_token_kinds

NEUTRAL = 0
"""Token category: a word the lexicon does not rate (and not a negator); padding and <unk> too."""
NEGATOR = 1
SENTIMENT_CATEGORIES = {2: "strong negative", 3: "weak negative", 4: "weak positive", 5: "strong positive"}
"""Rated words by valence: <= -2, (-2, 0), (0, 2), >= 2 (VADER's ratings run from -4 to +4)."""
STRONG = 2.0
CATEGORIES = 6
EXTRA_NEGATORS = ("n't",)


@dataclass(frozen=True)
class Lexicon:
    valence: dict[str, float]
    """Word (lowercase) -> mean human rating in [-4, 4]."""
    negators: frozenset[str]


@lru_cache(maxsize=1)
def vader_lexicon() -> Lexicon:
    """VADER's lexicon and negators from the installed `vaderSentiment` package (no network)."""
    from vaderSentiment.vaderSentiment import NEGATE, SentimentIntensityAnalyzer

    valence = {word.lower(): float(score) for word, score in SentimentIntensityAnalyzer().lexicon.items()}
    negators = frozenset(word.lower() for word in NEGATE) | frozenset(EXTRA_NEGATORS)
    return Lexicon(valence=valence, negators=negators)


def valence_category(valence: float) -> int:
    if valence <= -STRONG:
        return 2
    if valence < 0:
        return 3
    if valence < STRONG:
        return 4
    return 5


def token_categories(tokens: Sequence[str], lexicon: Lexicon) -> np.ndarray:
    """[len(tokens)] int64 category per vocabulary id: NEUTRAL, NEGATOR or a sentiment category.

    A word both rated and a negator ("no" is rated -1.2) counts as a negator: what it does to
    the words after it matters more than its own rating."""
    categories = np.zeros(len(tokens), dtype=np.int64)
    for index, token in enumerate(tokens):
        word = token.lower()
        if word in lexicon.negators:
            categories[index] = NEGATOR
        elif (score := lexicon.valence.get(word)) is not None and score != 0.0:
            categories[index] = valence_category(score)
    return categories


NEGATES, ENDS_SCOPE = 1, 2
"""Negation roles (`negation_roles`); 0 for every other word."""


def negation_roles(tokens: Sequence[str], lexicon: Lexicon) -> np.ndarray:
    """[len(tokens)] int64 per vocabulary id: NEGATES for a negator, ENDS_SCOPE for punctuation
    and the contrast connectives ("but", "however", ...), 0 otherwise. A negation's scope runs
    from the word after the negator to the next ENDS_SCOPE token, the clause-bounded scope of
    Pang et al. (2002)'s NOT_ marking: "not itchy at all , but thin" negates "itchy at all"."""
    kinds = sentence_token_kinds(tokens, CONTRAST_CONNECTIVES)
    roles = np.where(kinds == WORD, 0, ENDS_SCOPE).astype(np.int64)
    roles[token_categories(tokens, lexicon) == NEGATOR] = NEGATES  # one rule for what a negator is
    return roles


WORD_FEATURES = ("valence", "negator", "contrast connective")
"""What `word_features` gives each vocabulary id, in column order."""


def word_features(tokens: Sequence[str], lexicon: Lexicon) -> np.ndarray:
    """[len(tokens), 3] float32 per vocabulary id: the lexicon's valence / 4 (in [-1, 1]; 0 for a
    word it does not rate), 1 for a negator, 1 for a contrast connective ("but", "however", ...).

    These are `model.lexicon_input`'s features: read beside a word's vector, they carry the
    lexicon's knowledge to words the training reviews use rarely or never ("worthless",
    "useless"), where a word vector alone says little about polarity."""
    features = np.zeros((len(tokens), len(WORD_FEATURES)), dtype=np.float32)
    connectives = frozenset(CONTRAST_CONNECTIVES)
    for index, token in enumerate(tokens):
        word = token.lower()
        if word in lexicon.negators:
            features[index, 1] = 1.0
        elif (score := lexicon.valence.get(word)) is not None:
            features[index, 0] = score / 4.0
        if word in connectives:
            features[index, 2] = 1.0
    return features


def lexicon_words(lexicon: Lexicon) -> list[str]:
    """The lexicon's rated words and its negators that spaCy keeps as one token (letters only:
    not emoticons, not multi-word entries, not "didn't", which it splits), sorted."""
    return sorted(word for word in set(lexicon.valence) | lexicon.negators if word.isalpha())
