"""Typed experiment configuration: defaults here, a TOML file per experiment, `--set` overrides.

Every section owns its defaults; a config file overrides some of them; `--set key=value`
overrides those. The merged result is validated (unknown keys and wrong types are one clear
error naming the key, with the closest valid key suggested) and saved with every output.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sentiment.errors import SentimentError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""An experiment name is one path component: letters, digits, `.`, `_`, `-`, starting with a letter or
digit (so never empty, `.`, `..`, hidden, absolute or containing `/`), at most 100 characters."""
RESERVED_SUFFIXES = (".partial",)
"""`runs/<name>.partial/` is where `<name>` trains; an experiment of that name would be deleted by it."""


def check_name(value: str) -> str:
    """The experiment name as a safe directory name, or a ValueError saying what is allowed."""
    if not NAME_PATTERN.fullmatch(value) or value.endswith(RESERVED_SUFFIXES):
        raise ValueError(
            "must be one directory name: 1-100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, not ending in '.partial'"
        )
    return value


class Section(BaseModel):
    # allow_inf_nan=False: `training.lr=inf` would train to NaN weights that label every review alike.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _none_is_the_choice_none(cls, data: Any) -> Any:
        # `--set model.lexicon_input=none` parses as null (which `model.vectors=none` means); where
        # a field's choices include the string "none", null is that choice.
        if not isinstance(data, dict):
            return data
        return {
            name: "none"
            if value is None and name in cls.model_fields and "none" in get_args(cls.model_fields[name].annotation)
            else value
            for name, value in data.items()
        }

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # A NUL cannot be part of a path or a column name; refuse it here rather than deep in os calls.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class PathsConfig(Section):
    data: str = "data"
    """Fetched raw files (`raw/`), vectors (`vectors/`) and prepared datasets (`prepared/`)."""
    runs: str = "runs"
    reports: str = "reports"
    prepared: str | None = None
    """The prepared dataset to read, `<data>/prepared/<prepared>`; default: the experiment's name.
    Lets several experiments share one prepared dataset (the cells of `sentiment compare`)."""

    @field_validator("prepared")
    @classmethod
    def _one_directory(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)


class DataConfig(Section):
    source: str = "clothing"
    """A named source (`clothing`, `imdb`), a local CSV/TSV/JSONL/Parquet file, or a hub id (`hub:NAME`)."""
    text_column: str | None = None
    """Column holding the review; default: the named source's own, else `text`."""
    label_column: str | None = None
    """Column holding the rating or sentiment word; default: the named source's own, else `label`."""
    title_column: str | None = None
    """Prefix each text with this column (the clothing reviews' `Title`), when set."""
    label_scheme: Literal["binary", "ternary", "stars"] = "binary"
    hub_config: str | None = None
    """Configuration name of a hub dataset, where it has several."""


class TokenizeConfig(Section):
    lowercase: bool = True
    max_len: int = Field(256, ge=1)
    """Tokens kept per review when encoding (the first `max_len`)."""


class SplitConfig(Section):
    validation: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    """Ignored when the source has its own test split."""

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitConfig:
        if self.validation + self.test >= 1:
            raise ValueError(
                f"validation ({self.validation}) + test ({self.test}) must be below 1, leaving a share for training"
            )
        return self


class VocabConfig(Section):
    min_freq: int = Field(2, ge=1)
    max_size: int | None = Field(30000, ge=1)
    """Most frequent words kept, not counting `<pad>` and `<unk>`; none for no limit."""


class ModelConfig(Section):
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    embedding_dim: int = Field(50, ge=1)
    vectors: str | None = "glove-6b-50d"
    """Pretrained word vectors: `glove-6b-50d`, a path to a GloVe/word2vec/fastText text file, or none."""
    freeze_embeddings: bool = False
    vector_words: int = Field(0, ge=0)
    """Also give the model the N most frequent words of `vectors` that the training vocabulary
    lacks (appended after it, with their vectors), so that words never seen in training, or
    seen too rarely, are read by their vector rather than as <unk>; 0 for none."""
    refine_vectors: Literal["none", "vader"] = "none"
    """`vader`: before training, move each lexicon-rated word's vector towards its nearest
    neighbours of like rating in VADER's lexicon (Yu et al. 2017; `sentiment.model.embeddings`)."""
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    bidirectional: bool = True
    dropout: float = Field(0.3, ge=0, lt=1)
    embedding_dropout: float = Field(0.0, ge=0, lt=1)
    weight_drop: float = Field(0.0, ge=0, lt=1)
    """DropConnect on the recurrent (hidden-to-hidden) weights while training (Wan et al. 2013,
    as in Merity et al. 2018's AWD-LSTM): each batch drops this share of them, one mask for every
    step of the batch; 0 for none."""
    input_dropout: float = Field(0.0, ge=0, lt=1)
    """Locked (variational) dropout on the word vectors the recurrent layer reads, while training
    (Gal & Ghahramani 2016; AWD-LSTM's input dropout): each review drops this share of the vectors'
    dimensions, the same ones at every word; the lexicon features are kept; 0 for none."""
    lexicon_dropout: float = Field(0.0, ge=0, lt=1)
    """With `lexicon_input`: in training, each word's lexicon valence is zeroed with this
    probability (its negator and connective flags and its vector are kept), so that a rated word
    is also learned from its vector and its context rather than from a context-free rating alone;
    0 for none."""
    negation_scope: bool = False
    """Read each word between a negator ("not", "never", "n't", ... : VADER's list) and the next
    punctuation mark or contrast connective through a learned map of its vector (Pang et al.
    2002's NOT_ scope, as an input feature of the network)."""
    lexicon_input: Literal["none", "vader"] = "none"
    """`vader`: read, beside each word's vector, what VADER's lexicon says of the word (its
    rating / 4, a negator flag, a contrast-connective flag), and give the vocabulary the
    lexicon's words it lacks, so that a sentiment word the training reviews never use
    ("worthless") is read by its rating rather than as <unk> (`sentiment.data.lexicon.word_features`)."""
    pooling: Literal["last", "max", "mean", "max+mean", "attention", "max+attention"] = "max+mean"
    """How the recurrent states become one vector: the last state of each direction, their max or
    mean over the words, or a learned attention over the words (`attention`: one additive scorer
    per direction), or two of these side by side."""
    head: Literal["pooled", "sentences", "clauses"] = "pooled"
    """`pooled`: one classifier over the whole review. `sentences`: a multiple-instance head
    (MILNET): each sentence encoded and classified on its own, weighed by a learned attention
    into the review's prediction, trained on review labels only. `clauses`: the same over
    clauses (sentences also split before "but", "however", "although", ...)."""
    init_from: str | None = None
    """A finished run (e.g. `runs/imdb`) to start from: its recurrent layers and classifier, and
    the embeddings of the words both vocabularies hold (transfer between datasets)."""

    @model_validator(mode="after")
    def _refine_needs_vectors(self) -> ModelConfig:
        if self.refine_vectors != "none" and not self.vectors:
            raise ValueError("model.refine_vectors refines pretrained vectors: set model.vectors too")
        return self

    @model_validator(mode="after")
    def _lexicon_dropout_needs_the_lexicon(self) -> ModelConfig:
        if self.lexicon_dropout > 0 and self.lexicon_input == "none":
            raise ValueError("model.lexicon_dropout drops the lexicon input's ratings: set model.lexicon_input too")
        return self


class TrainingConfig(Section):
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    lr_decay: float = Field(1.0, gt=0, le=1)
    """Per-epoch decay of the learning rate: epoch k trains at lr * lr_decay ** (k - 1) (1: constant)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """`linear`: the learning rate falls step by step in a straight line from lr to 0 at the end of
    `max_epochs` (so set `max_epochs` to the epochs the run should have), and the last epochs
    anneal instead of going on at full rate; `constant`: every step of an epoch at its rate."""
    weight_decay: float = Field(0.01, ge=0)
    embedding_lr_scale: float = Field(1.0, gt=0, le=1)
    """The word vectors learn at this share of the learning rate, the rest of the network at the
    whole of it (the discriminative fine-tuning of Howard & Ruder 2018): below 1, pretrained vectors
    stay nearer the neighbours they had, which the words training never sees keep. 1: one rate for
    all; for none at all, `model.freeze_embeddings`."""
    max_epochs: int = Field(8, ge=1)
    patience: int = Field(2, ge=1)
    """Epochs without improvement of the selection metric before stopping."""
    clip_norm: float = Field(1.0, gt=0)
    class_weights: bool = False
    """Weight the loss by inverse class frequency (for skewed label distributions)."""
    select_metric: Literal["macro_f1", "accuracy", "loss"] = "macro_f1"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)
    """CPU threads for torch; default: every core."""
    packed: Literal["auto", "yes", "no"] = "auto"
    """Packed sequences: `auto` packs on CUDA only (on CPU padded batches are 3.5x faster)."""
    seed: int | None = None
    """Initialisation, dropout and batch order; default: the top-level seed, which also draws the
    splits. Set it to retrain on the same split with a different start."""
    ensemble: int = Field(1, ge=1)
    """Models trained from seeds seed, seed+1, ..., each selected on validation on its own; the
    run predicts the mean of their probabilities."""
    temperature_scaling: bool = True
    """After model selection, fit one temperature on the validation split that makes the
    probabilities calibrated (accuracy and macro-F1 do not change); saved in run.json."""
    decision_threshold: Literal["none", "validation"] = "none"
    """Binary schemes: `validation` picks, after temperature scaling, the cut on P(second class)
    that maximises `select_metric` on the validation split; every prediction path then labels by
    it (saved in run.json, `decision`). `none`: the most probable class."""
    segments: Literal["none", "sentences", "sentences+clauses"] = "none"
    """`sentences`: each training review's sentences (spaCy's sentencizer, from `prepare`) are
    extra training examples with the review's label, so the model also learns from short texts.
    `sentences+clauses`: also the clauses of each sentence that a contrast connective ("but",
    "however", "although", ...) splits, so "but it runs small" is an example of its own; the
    clauses pass `segment_filter` like the sentences."""
    segment_weight: float = Field(1.0, gt=0)
    """Loss weight of one sentence example against the other examples of its batch. A batch's loss
    is its examples' weighted mean (over the batch's summed weights), and a batch holds examples of
    similar length, so the weight mostly sets a sentence against other short texts (labelled
    sentences, short reviews) rather than against long reviews: at the default's 0.3 the reviews
    carry 17-19% of an epoch's loss, where the weights taken over the whole epoch would give them
    31-35% (docs/RESULTS.md, "loss weights at face value", which measured that form too)."""
    segment_class_weights: bool = False
    """Weight sentence examples by inverse class frequency (among the sentences), so that a
    sentence equally common in positive and negative reviews is pulled towards neither class;
    whole reviews keep their weight."""
    segment_logit_adjustment: float = Field(0.0, ge=0)
    """tau of a logit-adjusted loss on the sentence examples (Menon et al. 2021): their logits get
    tau * log(class prior among the sentences) added before the cross-entropy, so the network
    learns a prior-free reading of short texts (90% of the kept sentences are positive, and a short
    text with weak evidence otherwise falls back to that prior); whole reviews keep the plain loss.
    0: off; 1: the adjustment that makes the sentence reading balanced."""
    segment_min_tokens: int = Field(2, ge=1)
    """Shorter sentences ("Love it!" is 3 tokens) are not used as examples."""
    segment_filter: Literal["none", "lexicon", "corpus", "lexicon_or_corpus"] = "none"
    """Binary schemes: keep a sentence example only where its polarity has its review's sign, so
    that neutral sentences ("I ordered it in black.") and a positive review's complaint do not
    carry the review's label; the reviews themselves are all kept. `lexicon`: VADER's compound
    score beyond its neutral band (|compound| >= 0.05); `corpus`: the summed log-odds of the
    polar unigrams and bigrams of the training reviews ("runs small", which VADER does not rate;
    `sentiment.training.segment_filter.corpus_polarity`); `lexicon_or_corpus`: either agrees."""
    segment_verdict_clause: bool = False
    """With `segment_filter`: a sentence that "but", "however" or "yet" splits is read through its
    clause after the last of them, where its verdict is ("beautiful shirt but runs small!" reads as
    "but runs small!"), so a positive review's mixed sentence does not teach that such a sentence
    is positive; the clause examples are read as before. Binary schemes."""
    segment_negation_veto: bool = False
    """With `segment_filter = "lexicon_or_corpus"`: in a sentence with a negator, the corpus
    reading does not count where VADER reads the other sign. VADER's rules flip what a negator
    governs ("this is not the best color" reads negative); the corpus n-grams read "best" alone,
    so without the veto a positive review's "not the best color" is kept as a positive example."""
    segment_relabel: bool = False
    """With `segment_filter`: a sentence that every reading of the filter puts on the other side
    of its review (for `lexicon_or_corpus`, VADER and the corpus n-grams both) is kept as an
    example of the other class rather than left out: a happy customer's "so sadly i will be
    returning this." teaches a negative. Binary schemes."""
    teacher: str | None = None
    """A finished run (its directory) that reads every sentence example before the first epoch:
    an example's target becomes (1 - `teacher_weight`) times its review's label plus
    `teacher_weight` times the teacher's probabilities (self-distillation,
    `sentiment.training.distillation`); whole reviews keep their labels. Needs `segments`."""
    teacher_weight: float = Field(0.5, gt=0, le=1)
    """The teacher's share of a sentence example's target (`teacher`)."""
    extra_sentences: str | None = None
    """The name of another prepared dataset of the same classes (`imdb`: run `sentiment prepare
    --config configs/imdb.toml` first) whose training reviews' sentences join the sentence
    examples: a sample of `extra_sentence_count`, drawn with the top-level seed, through
    `segment_filter`, at `segment_weight` (`sentiment.training.extra_sentences`); their frequent
    words join the model's vocabulary. Needs `segments`."""
    extra_sentence_count: int = Field(20_000, ge=1)
    """How many of the other dataset's sentences (`extra_sentences`) join the examples (fewer when
    the filter leaves out more than it usually does)."""
    extra_sentence_epochs: int = Field(0, ge=0)
    """How many first epochs the other dataset's sentences (`extra_sentences`) join; the later
    ones train on the experiment's own examples alone, so the other corpus is a warm start
    rather than a share of every epoch. 0: every epoch."""
    labelled_sentences: Literal["uci"] | None = None
    """A set of sentences labelled one by one whose training part joins every epoch's examples at
    `labelled_sentence_weight` and whose fixed held-out fifth is read after training (`run.json`
    `sentence_validation`); their frequent words join the model's vocabulary. `uci`: the 3,000
    Amazon, IMDB and Yelp sentences of Kotzias et al. (2015), fetched from the npm registry, less
    any text an evaluation set has (`sentiment.data.labelled_sentences`). Classes negative and positive."""
    labelled_sentence_weight: float = Field(1.0, gt=0)
    """The loss weight of a labelled sentence (`labelled_sentences`) against the other examples of
    its batch (a whole review weighs 1; see `segment_weight` for how a batch shares its loss)."""
    labelled_sentence_epochs: int = Field(0, ge=0)
    """How many first epochs the labelled sentences (`labelled_sentences`) join; 0: every epoch."""
    labelled_sentences_train_vectors: bool = True
    """Whether the labelled sentences' loss trains the word vectors too; false: it trains the
    recurrent layers and the classifier only (their rows read the vectors detached), so sentences
    of other domains do not move this domain's words."""
    sentence_validation: Literal["uci"] | None = None
    """A set of sentences labelled one by one (`labelled_sentences` has the names) whose fixed
    held-out fifth the kept model reads after training, whether or not the set's training part
    trains: a validation reading of short texts (`run.json` `sentence_validation`). With
    `labelled_sentences` its own set is read anyway."""
    target_replication: float = Field(0.0, ge=0)
    """Weight of a loss that trains the recurrent state at every position, in each direction,
    on the example's label (Lipton et al. 2016; `sentiment.training.position_losses`); 0 for none."""
    lexicon_regularization: float = Field(0.0, ge=0)
    """Weight of the linguistic regulariser over neighbouring positions (Qian et al. 2017):
    little change at words VADER's lexicon does not rate, a learned drift at rated words, a
    learned flip at negators; needs `target_replication` > 0; 0 for none."""
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    """Label smoothing of the training loss (Szegedy et al. 2016): each example's target puts
    1 - e on its label and spreads e over all classes, so noisy labels (a neutral sentence
    carrying its review's) cannot be fitted to certainty. 0: off. Validation loss and temperature
    scaling read the plain likelihood."""
    ema_decay: float = Field(0.0, ge=0, lt=1)
    """Decay of an exponential moving average of the network's weights, updated after every step
    (Polyak averaging; `torch.optim.swa_utils.AveragedModel`): validation scores the average,
    model selection picks among averages, and the run keeps the selected one. 0: off; 0.999
    averages over about the last thousand steps."""
    soup: int = Field(1, ge=1)
    """Branches of epoch 2 averaged into one network (a uniform model soup, Wortsman et al. 2022;
    `sentiment.training.soup`): epoch 1 is trained once, epoch 2 `soup` times from the same point
    with different batch orders and dropout, and the branches' weights are averaged; validation
    keeps the better of epoch 1 and the soup, and the run ends after epoch 2. It scores as fast as
    one model. 1: off (ordinary epochs until `patience` or `max_epochs`)."""
    adversarial: float = Field(0.0, ge=0)
    """epsilon of adversarial training on the word vectors (Miyato et al. 2017;
    `sentiment.training.adversarial`): each step also trains on the batch with every example's
    word vectors moved an L2 distance epsilon (over the whole example) in the direction that
    raises its loss most, so no single cue word can carry a reading. About twice the cost of a
    step. GloVe 50-d word vectors have norms of about 4 to 6. 0: off."""
    contrast_rule: float = Field(0.0, ge=0, lt=1)
    """The A-but-B rule distilled into training (Hu et al. 2016, "Harnessing Deep Neural Networks
    with Logic Rules"; `sentiment.training.contrast_rule`): a sentence example "A but B" (B after its
    last "but", A not empty) is trained with this share of its loss towards a teacher distribution,
    the network's own prediction moved towards its reading of B alone, and the rest towards its
    label. The share rises linearly from 0 over the first epoch. Reviews are left alone. 0: off."""
    contrast_rule_strength: float = Field(6.0, gt=0)
    """C of the rule's teacher: log q(y) = log p(y) + C * p_B(y) + const, where p_B is the reading of B."""
    adversarial_loss: Literal["label", "consistency"] = "label"
    """What the perturbed pass of `adversarial` is trained towards: `label`, the example's label
    (adversarial training); `consistency`, the clean pass's own prediction, KL(p(x) || p(x + r))
    with p(x) held constant (the loss of virtual adversarial training, at the same direction r),
    which asks a reading to hold near each example without fitting its label there."""
    weight_interpolation: list[float] = Field(default_factory=list)
    """Candidates for alpha in (1 - alpha) * start + alpha * fine-tuned weights, each scored on
    validation after the best epoch is chosen and the best kept (WiSE-FT, Wortsman et al. 2022;
    `sentiment.training.interpolation`): for a model whose start is worth keeping, one from
    `model.init_from` or `pretrain.epochs`. Include 1 to let validation keep the fine-tuned model;
    [] for none."""

    @field_validator("weight_interpolation")
    @classmethod
    def _alphas_in_range(cls, values: list[float]) -> list[float]:
        outside = [value for value in values if not 0 < value <= 1]
        if outside:
            raise ValueError(f"every alpha must be in (0, 1]; {outside[0]:g} is not")
        return values

    @model_validator(mode="after")
    def _threshold_needs_a_decision_metric(self) -> TrainingConfig:
        if self.decision_threshold != "none" and self.select_metric == "loss":
            raise ValueError(
                "training.decision_threshold is chosen by the selection metric, and the loss does "
                "not depend on it: set training.select_metric to macro_f1 or accuracy"
            )
        return self

    @model_validator(mode="after")
    def _relabel_needs_a_filter(self) -> TrainingConfig:
        if self.segment_relabel and self.segment_filter == "none":
            raise ValueError("training.segment_relabel reads the filter's polarity: set training.segment_filter too")
        if self.segment_verdict_clause and self.segment_filter == "none":
            raise ValueError(
                "training.segment_verdict_clause changes the filter's reading: set training.segment_filter too"
            )
        if self.segment_negation_veto and self.segment_filter != "lexicon_or_corpus":
            raise ValueError(
                "training.segment_negation_veto weighs VADER's reading against the corpus's: "
                "set training.segment_filter = 'lexicon_or_corpus'"
            )
        if self.teacher and self.segments == "none":
            raise ValueError("training.teacher reads the sentence examples: set training.segments too")
        return self

    @model_validator(mode="after")
    def _one_kind_of_weight_mixing(self) -> TrainingConfig:
        if self.ema_decay > 0 and self.weight_interpolation:
            raise ValueError(
                "training.ema_decay and training.weight_interpolation both change the weights the "
                "run keeps: set one of them"
            )
        return self

    @model_validator(mode="after")
    def _soup_needs_a_second_epoch(self) -> TrainingConfig:
        if self.soup > 1 and self.max_epochs < 2:
            raise ValueError("training.soup trains epoch 2 in branches: set training.max_epochs to 2 or more")
        if self.soup > 1 and self.ema_decay > 0:
            raise ValueError("training.soup and training.ema_decay both average weights the run keeps: set one of them")
        return self

    @model_validator(mode="after")
    def _extra_sentences_need_segments(self) -> TrainingConfig:
        if self.extra_sentences and self.segments == "none":
            raise ValueError(
                "training.extra_sentences adds sentence examples, weighed and filtered as the "
                "experiment's own: set training.segments too"
            )
        if self.extra_sentence_epochs and not self.extra_sentences:
            raise ValueError(
                "training.extra_sentence_epochs says how many epochs the sentences of "
                "training.extra_sentences join: set training.extra_sentences too"
            )
        return self

    @model_validator(mode="after")
    def _one_set_of_labelled_sentences(self) -> TrainingConfig:
        if self.labelled_sentences and self.sentence_validation not in (None, self.labelled_sentences):
            raise ValueError(
                "training.sentence_validation reads the held-out part of training.labelled_sentences' "
                "set when that is set: leave it out or name the same set"
            )
        return self

    @model_validator(mode="after")
    def _labelled_sentence_epochs_need_the_set(self) -> TrainingConfig:
        if not self.labelled_sentences_train_vectors and not self.labelled_sentences:
            raise ValueError(
                "training.labelled_sentences_train_vectors says what the sentences of "
                "training.labelled_sentences train: set training.labelled_sentences too"
            )
        if self.labelled_sentence_epochs and not self.labelled_sentences:
            raise ValueError(
                "training.labelled_sentence_epochs says how many epochs the sentences of "
                "training.labelled_sentences join: set training.labelled_sentences too"
            )
        return self

    @model_validator(mode="after")
    def _regulariser_needs_positions(self) -> TrainingConfig:
        if self.lexicon_regularization > 0 and self.target_replication == 0:
            raise ValueError(
                "training.lexicon_regularization regularises the per-position distributions "
                "that training.target_replication learns: set target_replication > 0 too"
            )
        return self


class PretrainConfig(Section):
    """Language-model pretraining of the embedding and first recurrent layer before training
    on labels (`sentiment.training.pretraining`); 0 epochs turns it off."""

    epochs: int = Field(0, ge=0)
    lr: float = Field(2e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    """On the recurrent outputs before the next-token heads."""


class EvaluateConfig(Section):
    """What `evaluate` reports beside the test split and the contrast suite; none of it trains or selects."""

    out_of_domain: list[str] | None = None
    """Sentence sets rated by people (`amazon-snippets`, `movie-snippets`, `nyt-snippets`,
    `tweet-snippets`, or a path to an `id<TAB>mean<TAB>text` file); default: the Amazon and movie
    sets for the binary scheme, none for schemes they cannot be mapped to; [] for none."""
    out_of_domain_cut: float = Field(0.5, gt=0, le=4)
    """Mean rating at or above which a sentence is positive (at or below minus it, negative);
    sentences in between are dropped and counted."""
    vader: bool = True
    """Report VADER (a rule-based lexicon) beside the baseline, where the label scheme maps onto it."""


class ExperimentConfig(Section):
    name: str = "experiment"
    """Names the outputs: data/prepared/<name>, runs/<name>, reports/<name>; one directory name
    (`NAME_PATTERN`), so that no stage can write outside those folders."""
    seed: int = 13
    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    split: SplitConfig = SplitConfig()
    vocab: VocabConfig = VocabConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    training: TrainingConfig = TrainingConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @field_validator("name")
    @classmethod
    def _one_directory(cls, value: str) -> str:
        return check_name(value)

    @model_validator(mode="after")
    def _interpolation_needs_a_start(self) -> ExperimentConfig:
        if self.training.weight_interpolation and not (self.model.init_from or self.pretrain.epochs):
            raise ValueError(
                "training.weight_interpolation mixes the fine-tuned weights with the model's start, "
                "and a random start is not worth keeping: set model.init_from or pretrain.epochs too"
            )
        return self

    @model_validator(mode="after")
    def _scaled_vectors_are_trained(self) -> ExperimentConfig:
        if self.training.embedding_lr_scale != 1.0 and self.model.freeze_embeddings:
            raise ValueError(
                "training.embedding_lr_scale sets the rate of word vectors that train, and "
                "model.freeze_embeddings keeps them fixed: set one of the two"
            )
        return self

    # Where each stage reads and writes.
    @property
    def prepared_dir(self) -> Path:
        return Path(self.paths.data) / "prepared" / (self.paths.prepared or self.name)

    @property
    def run_dir(self) -> Path:
        return Path(self.paths.runs) / self.name

    @property
    def report_dir(self) -> Path:
        return Path(self.paths.reports) / self.name

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the named sections (all but `evaluate` when none: evaluation settings
        never change what is prepared or trained), to tell whether outputs are stale."""
        dump = self.model_dump(mode="json")
        chosen = {key: dump[key] for key in (sections or [key for key in dump if key != "evaluate"])}
        blob = json.dumps(chosen, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a TOML experiment file (or start from the defaults), apply `key=value` overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SentimentError(f"config file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SentimentError(f"{path}: not valid TOML: {error}") from None
        data.setdefault("name", path.stem)
    apply_overrides(data, overrides)
    return config_from_dict(data, origin=str(path) if path else "config")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> None:
    """Set each `key=value` override (a dotted key, a TOML literal value) in the plain config dict `data`."""
    for override in overrides:
        key, value = parse_override(override)
        _set_dotted(data, key, value)


def config_from_dict(data: dict[str, Any], origin: str = "config") -> ExperimentConfig:
    """Validate a plain dict (a TOML file's content, or a `config.json` saved with a run)."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise SentimentError(f"{origin}: {_describe(error)}") from None


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SentimentError(f"--set expects key=value (for example vocab.min_freq=3), got {text!r}")
    raw = raw.strip()
    # Values are TOML literals (3, 0.5, true, "x", [1, 2]); anything else is taken as a plain string.
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if raw.lower() in ("none", "null"):
        value = None
    return key, value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SentimentError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[leaf] = value


def _describe(error: ValidationError) -> str:
    """The first problem in one line, naming the dotted key and, for unknown keys, the closest valid one."""
    problem = error.errors()[0]
    location = [str(part) for part in problem["loc"]]
    key = ".".join(location)
    if problem["type"] == "extra_forbidden":
        valid = _valid_keys(location[:-1])
        close = difflib.get_close_matches(location[-1], valid, n=1, cutoff=0.5)
        hint = f"; did you mean {'.'.join(location[:-1] + close)!r}?" if close else f"; valid keys: {', '.join(valid)}"
        return f"unknown key {key!r}{hint}"
    if problem["type"] == "value_error":  # our validators: the message says it all
        given = problem.get("input")
        where = f"{key}: " if key else ""  # a check across sections names its keys itself
        return f"{where}{problem['ctx']['error']}" + ("" if isinstance(given, dict) else f" (got {given!r})")
    return f"{key}: {problem['msg']} (got {problem.get('input')!r})"


def _valid_keys(section_path: list[str]) -> list[str]:
    model: type[BaseModel] = ExperimentConfig
    for part in section_path:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
