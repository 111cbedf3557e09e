"""One table of parameter constraints: complete for every estimator, and the messages it gives."""

from __future__ import annotations

import inspect
from dataclasses import fields

import numpy as np
import pytest

from mmocc import HyperParams, MultimodalOCC
from mmocc.detectors.baselines import _PYOD_CLASSES, BaselineOCC
from mmocc.io.header import check_params as check_header_params
from mmocc.model.hyperparams import PAPER, PRESETS
from mmocc.model.params import (
    BASELINE_CONSTRAINTS,
    BASELINE_DETECTORS,
    HYPERPARAMETER_CONSTRAINTS,
    MULTIMODAL_CONSTRAINTS,
    PRESET_NAMES,
    ParameterError,
    check_value,
    check_values,
)

ESTIMATORS = [(MultimodalOCC, MULTIMODAL_CONSTRAINTS), (BaselineOCC, BASELINE_CONSTRAINTS)]


@pytest.mark.parametrize(("cls", "table"), ESTIMATORS, ids=["MultimodalOCC", "BaselineOCC"])
def test_every_init_parameter_has_exactly_one_entry(cls, table):
    parameters = list(inspect.signature(cls).parameters)
    assert sorted(table) == sorted(parameters), set(table) ^ set(parameters)
    assert cls._param_constraints is table


def test_every_hyperparameter_has_an_entry_in_field_order():
    assert list(HYPERPARAMETER_CONSTRAINTS) == [f.name for f in fields(HyperParams)]


def test_named_choices_match_what_they_name():
    assert sorted(PRESET_NAMES) == sorted(PRESETS)
    assert BASELINE_DETECTORS == tuple(_PYOD_CLASSES)


@pytest.mark.parametrize(("cls", "table"), ESTIMATORS, ids=["MultimodalOCC", "BaselineOCC"])
def test_defaults_and_presets_satisfy_the_table(cls, table):
    check_values(table, cls().get_params())
    for preset in PRESETS.values():
        check_values(HYPERPARAMETER_CONSTRAINTS, preset.to_dict())


M, B = MULTIMODAL_CONSTRAINTS, BASELINE_CONSTRAINTS


@pytest.mark.parametrize(
    ("table", "name", "value", "message"),
    [
        # Interval: a number of the right kind out of range names the range, anything else the kind too
        (M, "contamination", 0.6, r"^contamination must be in \(0, 0.5\], got 0.6$"),
        (M, "contamination", "abc", r"^contamination must be a number in \(0, 0.5\], got 'abc'$"),
        (M, "contamination", True, r"^contamination must be a number in \(0, 0.5\], got True$"),
        (M, "validation_fraction", 0.0, r"^validation_fraction must be in \(0, 1\), got 0.0$"),
        (M, "score_batch_size", 0, r"^score_batch_size must be >= 1, got 0$"),
        (M, "score_batch_size", 2.0, r"^score_batch_size must be an integer >= 1, got 2.0$"),
        (M, "lr", float("inf"), r"^lr must be None or a finite number >= 0, got inf$"),
        (M, "lr", 10**400, r"^lr must be None or a finite number >= 0, got 1000.*000$"),
        (M, "dropout", 1.0, r"^dropout must be in \[0, 1\), got 1.0$"),
        (M, "patch_size", 2048, r"^patch_size must be in \[16, 1024\], got 2048$"),
        # Options: names as a list, True, False and None spelt out; a near-miss name gets a suggestion first
        (M, "threshold", "val", r"^threshold must be one of \['train', 'holdout'\], got 'val'$"),
        (M, "shared_weights", 1, r"^shared_weights must be None, True, False or 'auto', got 1$"),
        (M, "amp", "yes", r"^amp must be 'auto', True or False, got 'yes'$"),
        (
            M,
            "preset",
            None,
            r"^preset must be one of \['default', 'paper', 'patch', 'pretrained', 'combined'\], got No",
        ),
        (M, "score", "nrom", r"^score='nrom' is not valid \(unknown score 'nrom'; did you mean 'norm'\?\); "),
        (B, "detector", "knm", r"^detector='knm' is not valid \(unknown detector 'knm'; did you mean 'knn'"),
        (M, "diversity", 3, r"^diversity must be None, 'direct', 'det' or 'logdet', got 3$"),
        # Boolean
        (M, "bias", 1, r"^bias must be None, True or False, got 1$"),
        (M, "verbose", "x", r"^verbose must be None, True or False, got 'x'$"),
        # a non-empty sequence of positive integers
        (M, "filters", "64", r"^filters must be None or a non-empty sequence of positive integers, got '64'"),
        (M, "hidden", (8, 0), r"^hidden must be None or a non-empty sequence .*, got \(8, 0\)$"),
        (M, "hidden", [True], r"^hidden must be None or a non-empty sequence .*, got \[True\]$"),
        # instances, view names, unions
        (B, "detector_params", "k=3", r"^detector_params must be None or a dict, got 'k=3'$"),
        (M, "views", ["a", 1], r"^views must be None, a view name or a list of view names, got \['a', 1\]$"),
        (M, "random_state", -1, r"^random_state must be in \[0, 4294967295\], got -1$"),
        (M, "random_state", 1.5, r"^random_state must be None, an integer in .* or a numpy.random.Random"),
        (M, "patch_backbone", 3, r"^patch_backbone must be None, one of \[.*\] or a torch.nn.Module, got 3$"),
        (M, "device", 0, r"^device must be a torch.device or a name \('auto', 'cpu', 'cuda:1', ...\), got 0"),
    ],
)
def test_each_kind_of_constraint_names_the_parameter_the_value_and_what_is_allowed(
    table, name, value, message
):
    with pytest.raises(ParameterError, match=message):
        check_value(name, value, table[name])


def test_a_refusal_is_a_value_error_and_a_type_error_with_a_bounded_message():
    with pytest.raises(ValueError) as value_error:
        check_value("score", "x" * 10_000, M["score"])
    assert isinstance(value_error.value, TypeError) and len(str(value_error.value)) < 300


def test_accepted_values_are_normalised():
    epochs = check_value("epochs", np.int64(3), M["epochs"])
    assert epochs == 3 and type(epochs) is int
    assert type(check_value("lr", 1, M["lr"])) is float
    assert type(check_value("score", np.str_("knn"), M["score"])) is str
    assert check_value("shared_weights", np.True_, M["shared_weights"]) is True
    assert check_value("filters", np.array([8, 4]), M["filters"]) == (8, 4)
    assert check_value("diversity", None, M["diversity"]) is None
    assert check_value("epochs", 10**30, M["epochs"]) == 10**30


def test_every_place_that_checks_parameters_goes_through_the_table():
    message = r"epochs must be >= 1, got 0"
    with pytest.raises(ValueError, match=message):
        HyperParams.from_preset("paper", epochs=0)
    with pytest.raises(ValueError, match=message):
        MultimodalOCC(epochs=0).check_params()
    with pytest.raises(ValueError, match=message):
        MultimodalOCC(epochs=0).fit({"v": np.zeros((8, 3))})
    with pytest.raises(ValueError, match=r"^contamination must be in \(0, 0.5\], got 0.0$"):
        BaselineOCC(contamination=0.0).fit({"v": np.zeros((8, 3))})
    with pytest.raises(ValueError, match=r"'m.mmocc': invalid model header: params\.epochs must be >= 1"):
        check_header_params({**PAPER.to_dict(), "epochs": 0}, "m.mmocc", "0.4.0")
