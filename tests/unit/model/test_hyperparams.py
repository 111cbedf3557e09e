"""HyperParams: one typed, validated place for every hyper-parameter; presets are instances."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from sklearn.base import clone

from mmocc import HyperParams, MultimodalOCC
from mmocc.model.hyperparams import DEFAULT, HYPERPARAMETERS, PAPER, PRESETS


def test_presets_are_validated_instances():
    assert PRESETS["paper"] is PAPER and PRESETS["default"] is DEFAULT
    assert PAPER.score == "norm" and PAPER.compactness == "origin" and PAPER.epochs == 4
    assert DEFAULT.score == "knn" and DEFAULT.knn_bank == "pooled" and DEFAULT.knn_space == "both"
    assert HYPERPARAMETERS == HyperParams.names() and len(HYPERPARAMETERS) == 37
    with pytest.raises(FrozenInstanceError):
        PAPER.epochs = 9  # type: ignore[misc]


def test_from_preset_fills_none_and_normalises_types():
    hp = HyperParams.from_preset(
        "paper", epochs=np.int64(7), lr=None, filters=[8, np.int32(4)], lr_schedule="cosine"
    )
    assert hp.epochs == 7 and type(hp.epochs) is int
    assert hp.lr == PAPER.lr
    assert hp.filters == (8, 4) and all(type(f) is int for f in hp.filters)
    assert hp.lr_schedule == "cosine"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("score", "nrom", r"score='nrom' is not valid \(unknown score 'nrom'; did you mean 'norm'\?\)"),
        ("knn_space", "inputs", r"knn_space='inputs' is not valid \(.*; did you mean 'input'\?\)"),
        ("shared_weights", 1, r"shared_weights must be True, False or 'auto', got 1"),
        ("bias", "yes", "bias must be True or False"),
        ("batch_size", 2.5, "batch_size must be an integer >= 1, got 2.5"),
        ("weight_decay", float("inf"), "weight_decay must be a finite number >= 0"),
        ("hidden", "128", "hidden must be a non-empty sequence of positive integers"),
        ("augment_shift", 0.8, r"augment_shift must be in \[0, 0.5\]"),
        ("dropout", "x", r"dropout must be a number in \[0, 1\), got 'x'"),
        ("stop_tol", float("nan"), "stop_tol must be None or a finite number >= 0"),
        ("coreset_ratio", 0.0, r"coreset_ratio must be in \(0, 1\]"),
        ("patch_size", 8, r"patch_size must be in \[16, 1024\], got 8"),
        ("patch_size", 16.0, r"patch_size must be None or an integer in \[16, 1024\], got 16.0"),
        ("patch_top_k", 0, "patch_top_k must be >= 1, got 0"),
        ("view_combine", "sum", r"view_combine must be one of \['max', 'mean'\], got 'sum'"),
        ("knn_search", "aprox", r"knn_search='aprox' is not valid \(.*; did you mean 'approximate'\?\)"),
        ("patch_backbone", "resnet", r"patch_backbone must be one of \['autoencoder', .*\], got 'resnet'"),
    ],
)
def test_each_invalid_value_is_named(name, value, message):
    with pytest.raises(ValueError, match=message):
        HyperParams.from_preset("default", **{name: value})


def test_unknown_names_and_presets_are_refused():
    with pytest.raises(TypeError, match="unknown hyper-parameter 'epoch'; did you mean 'epochs'"):
        HyperParams.from_preset("default", epoch=3)
    with pytest.raises(ValueError, match=r"preset='papr' is not valid \(.*; did you mean 'paper'\?\)"):
        HyperParams.from_preset("papr")
    with pytest.raises(ValueError, match="score='center' needs a training centre"):
        HyperParams.from_preset("paper", score="center")


def test_dict_round_trip_through_json():
    hp = HyperParams.from_preset("default", diversity="logdet", filters=(8, 4))
    again = HyperParams.from_dict(json.loads(json.dumps(hp.to_dict())))
    assert again == hp
    with pytest.raises(ValueError, match=r"missing \['knn_space'\]"):
        HyperParams.from_dict({k: v for k, v in hp.to_dict().items() if k != "knn_space"})


def test_get_params_follows_scikit_learn_and_resolved_params_shows_values():
    clf = MultimodalOCC(preset="paper", epochs=3)
    params = clf.get_params()
    assert params["epochs"] == 3 and params["lr"] is None and params["score"] is None
    assert clone(clf).get_params() == params
    resolved = clf.resolved_params()
    assert isinstance(resolved, HyperParams)
    assert resolved.epochs == 3 and resolved.lr == 1e-3 and resolved.score == "norm"
    assert resolved.arch().filters == PAPER.filters
