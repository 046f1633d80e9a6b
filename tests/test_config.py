import contextlib
import json
import math

import pytest
import torch

from lenet_core.cli import build_parser
from lenet_core.config import KEYED_THROUGH_DATA, KEYED_WHEN_SET, NAME_CHOICES, RunConfig
from lenet_core.registry import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, register_optimizer, register_schedule


@pytest.mark.parametrize("field", NAME_CHOICES)
def test_unknown_names_are_refused_with_the_choices(field):
    with pytest.raises(ValueError) as err:
        RunConfig(**{field: "nonsense"})
    assert str(err.value) == f"unknown {field} 'nonsense'; valid: {', '.join(NAME_CHOICES[field])}"


@pytest.mark.parametrize("field, table", [("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                                          ("augment", AUGMENTATIONS), ("test_augment", AUGMENTATIONS)])
def test_the_valid_names_are_the_registry_tables(field, table):
    """No second list: RunConfig checks a name against the very table the training loop indexes."""
    assert NAME_CHOICES[field] is table
    with pytest.raises(ValueError, match=f"unknown {field} 'lamb'; valid: {', '.join(table)}$"):
        RunConfig(**{field: "lamb"})


def test_stored_names_stay_valid():
    """Run records store these names: each must stay registered, with the same meaning for the
    augmentations."""
    assert set(OPTIMIZERS) >= {"sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw"}
    assert set(SCHEDULES) >= {"constant", "step", "cosine", "one_cycle", "lecun1998", "bigballon"}
    assert {name: (a.shift, a.flip) for name, a in AUGMENTATIONS.items()} == {
        "none": (False, False), "shift": (True, False), "flip": (False, True), "shift_flip": (True, True)}


@contextlib.contextmanager
def _scratch():
    """Whatever is registered inside is gone after it: the tables get back their entries, in order."""
    tables = (OPTIMIZERS, SCHEDULES)
    saved = [dict(t) for t in tables]
    try:
        yield
    finally:
        for table, entries in zip(tables, saved):
            table.clear()
            table.update(entries)


@pytest.fixture
def scratch_registry():
    with _scratch():
        yield


def test_a_registered_optimizer_is_accepted(scratch_registry):
    with pytest.raises(ValueError, match="unknown optimizer 'sign_sgd'"):
        RunConfig(optimizer="sign_sgd")

    @register_optimizer("sign_sgd")
    def sign_sgd(params, lr, weight_decay):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)

    assert OPTIMIZERS["sign_sgd"] is sign_sgd
    assert RunConfig(optimizer="sign_sgd", lr=0.1).optimizer == "sign_sgd"
    assert "sign_sgd" in build_parser().epilog  # the command line lists it among the valid names


def test_a_registered_schedule_is_accepted(scratch_registry):
    register_schedule("halving")(lambda t, epochs: 0.5 ** math.floor(t))
    assert RunConfig(schedule="halving").schedule == "halving"


def test_a_name_is_registered_once(scratch_registry):
    adam, cosine = OPTIMIZERS["adam"], SCHEDULES["cosine"]
    with pytest.raises(ValueError, match="optimizer 'adam' is already registered"):
        register_optimizer("adam")(lambda params, lr, weight_decay: None)
    with pytest.raises(ValueError, match="schedule 'cosine' is already registered"):
        register_schedule("cosine")(lambda t, epochs: 1.0)
    assert OPTIMIZERS["adam"] is adam and SCHEDULES["cosine"] is cosine  # the first registration stays


def test_the_scratch_registry_cleans_up():
    """What a test registers is gone after it, and the tables keep their order."""
    before = (list(OPTIMIZERS), list(SCHEDULES))
    with _scratch():
        register_optimizer("sign_sgd")(lambda params, lr, weight_decay: None)
        register_schedule("halving")(lambda t, epochs: 0.5 ** math.floor(t))
        assert "sign_sgd" in OPTIMIZERS and "halving" in SCHEDULES
    assert (list(OPTIMIZERS), list(SCHEDULES)) == before
    with pytest.raises(ValueError, match="unknown optimizer 'sign_sgd'"):
        RunConfig(optimizer="sign_sgd")


@pytest.mark.parametrize("field, value", [
    ("lr", -0.1), ("lr", 0), ("lr", float("nan")), ("lr", float("inf")),
    ("epochs", 0), ("batch_size", 0), ("dropout", 1.0), ("dropout", -0.1),
    ("weight_decay", -1e-4), ("l1", -1), ("label_smoothing", 1.0), ("patience", -1),
    ("train_size", -5), ("seed", -1), ("shift_pixels", -1), ("shift_pixels", 9),
])
def test_out_of_range_numbers_are_refused_naming_the_value(field, value):
    with pytest.raises(ValueError, match=field):
        RunConfig(**{field: value})


@pytest.mark.parametrize("field, value", [("epochs", 2.5), ("epochs", "ten"), ("lr", "fast"),
                                          ("batch_norm", "maybe"), ("act", 3), ("epochs", True)])
def test_wrong_types_are_refused(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        RunConfig(**{field: value})


def test_text_from_a_command_line_is_coerced():
    cfg = RunConfig.from_dict(dict(lr="0.01", epochs="3", batch_norm="true", dropout="0.5"))
    assert (cfg.lr, cfg.epochs, cfg.batch_norm, cfg.dropout) == (0.01, 3, True, 0.5)


def test_unknown_keys_are_refused_with_the_valid_keys():
    with pytest.raises(ValueError, match="unknown configuration key.*activation.*valid: dataset, act"):
        RunConfig.from_dict({"activation": "relu"})


def test_flipping_digits_is_refused():
    with pytest.raises(ValueError, match="valid for mnist: none, shift"):
        RunConfig(dataset="mnist", augment="flip")
    RunConfig(dataset="fashion_mnist", augment="shift_flip")  # fine elsewhere


def test_canonical_json_is_stable_and_round_trips():
    cfg = RunConfig(act="tanh", seed=3)
    assert cfg.canonical_json() == RunConfig.from_dict(json.loads(cfg.canonical_json())).canonical_json()
    assert cfg.canonical_json() != cfg.replace(seed=4).canonical_json()


def test_classic_preset_is_the_1998_network_trained_the_papers_way():
    cfg = RunConfig.classic("fashion_mnist", seed=2)
    assert (cfg.act, cfg.pool, cfg.init, cfg.c3_table, cfg.schedule, cfg.epochs) == (
        "scaled_tanh", "subsample", "lecun_uniform", True, "lecun1998", 20)
    assert (cfg.output, cfg.loss, cfg.optimizer, cfg.lr, cfg.batch_size) == ("rbf", "map", "sdlm", 5e-4, 1)
    assert cfg.dataset == "fashion_mnist" and cfg.seed == 2


def test_presets():
    assert RunConfig.from_values({"preset": "classic", "seed": 3}) == RunConfig.classic(seed=3)
    assert RunConfig.from_values({"act": "elu"}) == RunConfig(act="elu")
    with pytest.raises(ValueError, match="unknown preset 'vintage'; valid: modern, classic$"):
        RunConfig.from_values({"preset": "vintage"})
    with pytest.raises(ValueError, match="unknown configuration key.*colour"):
        RunConfig.from_values({"preset": "classic", "colour": "red"})


def test_shift_pixels_needs_a_shifting_augmentation():
    assert RunConfig(augment="shift", shift_pixels=1).shift_pixels == 1
    with pytest.raises(ValueError, match="shift_pixels=2 needs a shifting augment; got augment 'flip'; "
                                         "valid: shift, shift_flip"):
        RunConfig(dataset="cifar10", augment="flip", shift_pixels=2)


@pytest.mark.parametrize("field", ["augment", "test_augment"])
def test_flipping_digits_is_refused_for_training_and_for_evaluation(field):
    with pytest.raises(ValueError, match=f"{field} 'shift_flip' flips images, which changes what a digit "
                                         f"means; valid for mnist: none, shift"):
        RunConfig(dataset="mnist", **{field: "shift_flip"})
    assert getattr(RunConfig(dataset="fashion_mnist", **{field: "shift_flip"}), field) == "shift_flip"


@pytest.mark.parametrize("field, value", [("shift_pixels", 1), ("test_augment", "shift"), ("normalize", False),
                                          ("norm_layer", "group"), ("output", "rbf")])
def test_a_field_added_later_enters_the_key_only_when_set(field, value):
    """Runs stored before a field existed keep their keys: at its default it is left out of
    the text the key hashes, and set, it is in."""
    assert field in KEYED_WHEN_SET
    before = RunConfig(augment="shift", batch_norm=True)
    legacy = {k: v for k, v in before.to_dict().items() if k not in KEYED_WHEN_SET + KEYED_THROUGH_DATA}
    assert before.canonical_json() == json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    assert json.dumps({field: value})[1:-1].replace(" ", "") in before.replace(**{field: value}).canonical_json()
    assert RunConfig.from_dict(legacy) == before  # a record written before the field loads as before


def test_the_data_copy_is_validated_per_dataset_and_keyed_through_the_data():
    """Only CIFAR-10 has a second (lossy) copy; the copy never enters the configuration's text,
    because the data identity in the key (content hash, lossy flag) already tells copies apart,
    so runs stored before the field existed keep their keys."""
    assert RunConfig(dataset="cifar10", data_copy="jpeg").data_copy == "jpeg"
    with pytest.raises(ValueError, match="unknown data_copy 'jpeg' for mnist; valid: official"):
        RunConfig(dataset="mnist", data_copy="jpeg")
    with pytest.raises(ValueError, match="unknown data_copy 'png' for cifar10; valid: official, jpeg"):
        RunConfig(dataset="cifar10", data_copy="png")
    official, jpeg = RunConfig(dataset="cifar10"), RunConfig(dataset="cifar10", data_copy="jpeg")
    assert "data_copy" not in official.canonical_json() and official.canonical_json() == jpeg.canonical_json()


def test_a_norm_layer_needs_normalization_switched_on():
    assert RunConfig(batch_norm=True, norm_layer="layer").model_kwargs()["norm_layer"] == "layer"
    with pytest.raises(ValueError, match="norm_layer='group' applies only with batch_norm=True"):
        RunConfig(norm_layer="group")
