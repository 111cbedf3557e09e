"""Hostile and damaged model files: each is refused at load with an error naming the file and the culprit.

One test per case of the model-file audit. Each rewrites a small saved model
with one thing wrong (a header field, a tensor) and checks that
:func:`mmocc.load` refuses it with ``ValueError``/``OSError`` naming the file,
or, for keys added after model format 1, that it loads with the old meaning.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

import mmocc
from mmocc import MultimodalOCC
from mmocc.cli import main
from mmocc.io.format import read_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"epochs": 1, "filters": (4,), "random_state": 0}


def _images(n: int = 12) -> dict[str, np.ndarray]:
    return {"a": np.random.default_rng(0).random((n, 1, 8, 8)).astype(np.float32)}


def _vectors(n: int = 12) -> dict[str, np.ndarray]:
    return {"v": np.random.default_rng(1).random((n, 8)).astype(np.float32)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small saved models by name: image k-NN (default preset), vector k-NN, patch, latent-only k-NN."""
    root = tmp_path_factory.mktemp("models")
    fits = {
        "image": (MultimodalOCC(**TINY), _images()),
        "vector": (MultimodalOCC(**TINY), _vectors()),
        "patch": (MultimodalOCC(preset="patch", **TINY), _images()),
        "old_knn": (MultimodalOCC(knn_bank="joint", knn_space="latent", **TINY), _images()),
    }
    paths = {}
    for name, (clf, X) in fits.items():
        paths[name] = root / f"{name}.mmocc"
        clf.fit(X).save(paths[name])
    return paths


def rewrite(source: Path, target: Path, header_edit=None, tensor_edit=None) -> Path:
    """Write ``source`` again as ``target`` after editing its JSON header and/or its tensors in place."""
    header, tensors = read_config(source)
    tensors = dict(tensors)
    if header_edit is not None:
        header_edit(header)
    if tensor_edit is not None:
        tensor_edit(tensors)
    save_file(tensors, str(target), metadata={"mmocc": json.dumps(header)})
    return target


def refused(path: Path, culprit: str, error: type[Exception] = ValueError) -> str:
    """Load ``path``, expecting ``error`` whose one-line message names the file and ``culprit``."""
    with pytest.raises(error) as info:
        mmocc.load(path)
    message = str(info.value)
    assert path.name in message and culprit in message, message
    assert "\n" not in message
    return message


# --------------------------------------------------- 5. declared sizes


def test_header_declaring_a_huge_view_is_refused_before_allocating(models, tmp_path):
    def huge(header):
        header["views"][0]["shape"] = [1_000_000]

    path = rewrite(models["vector"], tmp_path / "huge.mmocc", header_edit=huge)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError):
        mmocc.load(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # ru_maxrss is in KiB
    assert grown_mib < 200, f"loading grew the peak memory by {grown_mib:.0f} MiB"
    refused(path, "1000000")


def test_header_declaring_an_impossible_view_is_refused_naming_the_field(models, tmp_path):
    def impossible(header):
        header["views"][0]["shape"] = [10**12]

    path = rewrite(models["vector"], tmp_path / "impossible.mmocc", header_edit=impossible)
    refused(path, "views[0].shape")


def test_header_declaring_huge_layers_is_refused_naming_the_field(models, tmp_path):
    def wide(header):
        header["params"]["filters"] = [10**6]

    refused(rewrite(models["image"], tmp_path / "wide.mmocc", header_edit=wide), "params.filters")


# --------------------------------------------------- 6. malformed or older headers


@pytest.mark.parametrize("key", ["views", "params", "n_samples_in", "estimator_params"])
def test_header_missing_a_required_key_is_refused_naming_the_file_and_key(models, tmp_path, key):
    path = rewrite(models["image"], tmp_path / "partial.mmocc", header_edit=lambda header: header.pop(key))
    refused(path, repr(key))


def test_header_without_later_added_hyperparameters_loads_with_the_old_behaviour(models, tmp_path):
    def older(header):
        for key in ("knn_space", "knn_bank", "stop_tol"):
            del header["params"][key]

    path = rewrite(models["old_knn"], tmp_path / "older.mmocc", header_edit=older)
    loaded, saved = mmocc.load(path), mmocc.load(models["old_knn"])
    assert (loaded.params_.knn_space, loaded.params_.knn_bank) == ("latent", "joint")
    np.testing.assert_array_equal(loaded.decision_function(_images()), saved.decision_function(_images()))


@pytest.mark.parametrize("tensor", ["decision_scores", "rule.bank.latent:group_0", "rule.mean"])
def test_file_missing_a_tensor_is_refused_naming_the_file_and_tensor(models, tmp_path, tensor):
    path = rewrite(models["image"], tmp_path / "partial.mmocc", tensor_edit=lambda found: found.pop(tensor))
    refused(path, repr(tensor))


def test_metadata_that_is_a_json_list_is_refused_naming_the_file(models, tmp_path, capsys):
    def listed(header):
        header["metadata"] = ["normal", "bee"]

    path = rewrite(models["image"], tmp_path / "listed.mmocc", header_edit=listed)
    refused(path, "metadata")
    with pytest.raises(SystemExit) as info:
        main(["info", str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "listed.mmocc" in err, err


def test_header_that_is_a_json_array_is_refused_naming_the_file(models, tmp_path):
    path = tmp_path / "array.mmocc"
    _, tensors = read_config(models["image"])
    save_file(dict(tensors), str(path), metadata={"mmocc": json.dumps([1, 2, 3])})
    refused(path, "not an mmocc model")


# --------------------------------------------------- 7. a full disk while saving

_ENOSPC = "Error while serializing: I/O error: No space left on device (os error 28)"


def _full_disk(*args, **kwargs):
    raise SafetensorError(_ENOSPC)


def test_full_disk_while_saving_is_an_oserror_naming_the_file_and_leaves_no_temporary(
    models, tmp_path, monkeypatch
):
    target = tmp_path / "model.mmocc"
    shutil.copy(models["image"], target)
    before = target.read_bytes()
    clf = mmocc.load(target)
    monkeypatch.setattr("mmocc.io.format.save_file", _full_disk)
    with pytest.raises(OSError) as info:
        clf.save(target)
    assert info.value.errno == errno.ENOSPC and "model.mmocc" in str(info.value)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mmocc"]


def test_full_disk_during_train_out_is_one_line_with_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("mmocc.io.format.save_file", _full_disk)
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", "synthetic:n_per_class=4,n_classes=2,size=8", "--normal", "0"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--epochs", "1", "-p", "filters=[4]", "--out", "out.mmocc"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2
    assert err[-1].startswith("mmocc: error: ") and "out.mmocc" in err[-1], err
    assert "No space left on device" in err[-1]
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "out.mmocc" in p.name]


# --------------------------------------------------- 8. tampered tensors


def _set(name: str, make):
    def edit(tensors):
        tensors[name] = make(tensors[name])

    return edit


def _with_nan(tensor: torch.Tensor) -> torch.Tensor:
    out = tensor.clone()
    out.view(-1)[0] = float("nan")
    return out


def test_nan_training_scores_are_refused_naming_the_tensor(models, tmp_path):
    path = rewrite(models["image"], tmp_path / "nan.mmocc", tensor_edit=_set("decision_scores", _with_nan))
    refused(path, "'decision_scores'")


def test_integer_training_scores_are_refused_naming_the_tensor(models, tmp_path):
    edit = _set("decision_scores", lambda t: (t * 10).to(torch.int8))
    refused(rewrite(models["image"], tmp_path / "int8.mmocc", tensor_edit=edit), "int8")


BANKS = [("image", "rule.bank.latent:group_0"), ("patch", "rule.bank.group_0")]


@pytest.mark.parametrize(("model", "bank"), BANKS)
def test_transposed_memory_bank_is_refused_at_load_naming_the_tensor(models, tmp_path, model, bank):
    edit = _set(bank, lambda t: t.T.contiguous())
    refused(rewrite(models[model], tmp_path / "transposed.mmocc", tensor_edit=edit), repr(bank))


def test_bfloat16_memory_bank_is_refused_at_load_naming_the_tensor(models, tmp_path):
    edit = _set("rule.bank.input:group_0", lambda t: t.to(torch.bfloat16))
    refused(rewrite(models["image"], tmp_path / "bf16.mmocc", tensor_edit=edit), "bfloat16")


def test_nan_weights_are_refused_at_load_naming_the_tensor(models, tmp_path):
    weight = "model.encoders.group_0.layers.0.weight"
    path = rewrite(models["image"], tmp_path / "nan_weight.mmocc", tensor_edit=_set(weight, _with_nan))
    refused(path, repr(weight))


# --------------------------------------------------- weak cases


def test_unknown_parameter_from_a_newer_writer_names_the_file_and_both_versions(models, tmp_path):
    def newer(header):
        header["estimator_params"]["foo"] = 1
        header["mmocc_version"] = "99.0.0"

    message = refused(rewrite(models["image"], tmp_path / "newer.mmocc", header_edit=newer), "'foo'")
    assert f"mmocc 99.0.0 (newer than this {mmocc.__version__})" in message


def test_unreadable_model_file_says_why_naming_the_file(models, tmp_path, monkeypatch):
    path = tmp_path / "locked.mmocc"
    shutil.copy(models["image"], path)
    if os.geteuid() == 0:  # root reads any file: make opening this one fail as chmod 000 does for a user
        real_open = builtins.open

        def deny(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file) == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", deny)
    else:
        path.chmod(0)
    refused(path, "Permission denied", PermissionError)


def test_model_path_that_is_a_folder_says_so_naming_it(tmp_path):
    folder = tmp_path / "folder.mmocc"
    folder.mkdir()
    refused(folder, "is a folder", IsADirectoryError)
