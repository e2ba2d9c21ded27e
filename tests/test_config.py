import json

import pytest

from sentiment.config import config_from_dict, load_config
from sentiment.errors import SentimentError


def test_default_experiment_loads_and_names_itself_after_the_file():
    config = load_config("configs/clothing.toml")
    assert config.name == "clothing"
    assert config.data.source == "clothing"
    assert str(config.prepared_dir) == "data/prepared/clothing"


def test_overrides_are_typed_and_dotted():
    config = load_config(
        "configs/clothing.toml", ["vocab.min_freq=3", "tokenize.lowercase=false", "model.vectors=none"]
    )
    assert config.vocab.min_freq == 3 and config.tokenize.lowercase is False and config.model.vectors is None


def test_a_bare_none_is_the_choice_none_where_the_choices_have_it():
    config = load_config(
        "configs/clothing.toml",
        [
            "model.lexicon_input=none",
            "model.lexicon_dropout=0",
            "training.decision_threshold=None",
            "training.segment_filter=none",
            "training.segment_negation_veto=false",
        ],
    )
    assert (config.model.lexicon_input, config.training.decision_threshold, config.training.segment_filter) == (
        "none",
    ) * 3
    config = load_config("configs/clothing.toml", ['model.lexicon_input="none"', "model.lexicon_dropout=0"])  # quoted
    assert config.model.lexicon_input == "none"
    with pytest.raises(SentimentError, match="model.cell"):  # where "none" is no choice, null is refused
        load_config(None, ["model.cell=none"])


def test_unknown_key_suggests_the_closest(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[vocab]\nmin_frq = 3\n")
    with pytest.raises(SentimentError, match=r"unknown key 'vocab.min_frq'; did you mean 'vocab.min_freq'"):
        load_config(path)
    with pytest.raises(SentimentError, match="unknown key 'vocabulary'"):
        load_config(None, ["vocabulary.min_freq=2"])


def test_wrong_type_names_the_key():
    with pytest.raises(SentimentError, match="vocab.min_freq"):
        load_config(None, ["vocab.min_freq='many'"])
    with pytest.raises(SentimentError, match="data.label_scheme"):
        load_config(None, ["data.label_scheme=sextary"])


def test_bad_toml_and_missing_file(tmp_path):
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(SentimentError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(SentimentError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(SentimentError, match="key=value"):
        load_config(None, ["novalue"])


def test_saved_config_round_trips():
    config = load_config("configs/clothing.toml", ["training.lr=0.01"])
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.fingerprint("vocab") == config.fingerprint("vocab")
    assert config.fingerprint("training") != load_config("configs/clothing.toml").fingerprint("training")


def _differences(a, b, prefix=""):
    keys = set(a) | set(b)
    out = set()
    for key in keys:
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out |= _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.add(prefix + key)
    return out


@pytest.mark.parametrize(
    ("variant", "base", "allowed"),
    [
        # The transfer experiment trains as the default, from the IMDB sentence model, then mixes; at the
        # width it was measured at and its start has (128), where the default has 64.
        (
            "clothing-from-imdb",
            "clothing",
            {"name", "model.init_from", "paths.prepared", "training.weight_interpolation", "model.hidden_size"},
        ),
        # The comparison experiments change one thing each.
        ("clothing-gru", "clothing", {"name", "model.cell", "paths.prepared"}),
        ("clothing-ensemble", "clothing", {"name", "training.ensemble", "paths.prepared"}),
        # Its start is one epoch of one configs/imdb.toml model plus the default's sentence examples (without
        # clauses) and its lexicon input.
        (
            "imdb-sentences",
            "imdb",
            {
                "name",
                "paths.prepared",
                "training.segments",
                "training.segment_weight",
                "training.segment_filter",
                "training.adversarial",  # measured before IMDB trained adversarially
                "training.ensemble",
                "training.max_epochs",
                "model.lexicon_input",
            },
        ),
    ],
)
def test_derived_configs_change_only_what_they_say(variant, base, allowed):
    derived = load_config(f"configs/{variant}.toml")
    original = load_config(f"configs/{base}.toml")
    assert _differences(derived.to_dict(), original.to_dict()) == allowed
    assert derived.prepared_dir == original.prepared_dir
    default = load_config("configs/clothing.toml")
    if variant == "imdb-sentences":
        assert (derived.training.segments, derived.training.segment_weight, derived.training.segment_filter) == (
            "sentences",
            default.training.segment_weight,
            default.training.segment_filter,
        )
        assert derived.model.lexicon_input == default.model.lexicon_input
        assert (derived.training.ensemble, derived.training.max_epochs) == (1, 1)
    elif variant == "clothing-from-imdb":
        start = load_config("configs/imdb-sentences.toml")
        assert derived.model.init_from == f"runs/{start.name}"
        # Transfer copies the start's layers, so the width it keeps apart from the default must be the start's.
        assert derived.model.hidden_size == start.model.hidden_size


def test_weight_averaging_and_interpolation_are_not_combined():
    with pytest.raises(SentimentError, match="set one of them"):
        load_config(None, ["training.ema_decay=0.9", "training.weight_interpolation=[0.5, 1.0]", "pretrain.epochs=1"])
    with pytest.raises(SentimentError, match="ema_decay"):
        load_config(None, ["training.ema_decay=1"])


def test_a_rate_for_the_word_vectors_needs_vectors_that_train():
    with pytest.raises(SentimentError, match="embedding_lr_scale.*freeze_embeddings"):
        load_config(None, ["training.embedding_lr_scale=0.25", "model.freeze_embeddings=true"])
    with pytest.raises(SentimentError, match="embedding_lr_scale"):
        load_config(None, ["training.embedding_lr_scale=0"])
    assert load_config(None, ["training.embedding_lr_scale=0.25"]).training.embedding_lr_scale == 0.25
