"""Fuzz the model file: mutated headers and tensors load and score, or are refused naming the file.

Two small models are fitted once (the default k-NN rule and the patch rule).
Each example rewrites one of them with one mutation, of the JSON header (a
key deleted, added, or replaced by junk: wrong types, huge or non-finite
numbers, nested junk, JSON nested too deep to parse, an integer too long to
convert) or of one tensor (its dtype, its shape, removed, renamed, a NaN),
and checks the property: :func:`mmocc.load` then ``decision_function`` either
give finite scores, or raise ``ValueError``/``TypeError``/``OSError`` (a load
error naming the file); in bounded time; leaving no file behind.

The hypothesis profile ``ci`` (the default, see ``conftest.py``) runs a fixed
set of examples; ``--hypothesis-profile=long`` searches longer.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from safetensors.torch import save_file

import mmocc
from mmocc import MultimodalOCC
from mmocc.io.format import read_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = {"a": np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)}
ALLOWED = (ValueError, TypeError, OSError)  # FileNotFoundError is an OSError
SECONDS_PER_EXAMPLE = 10.0

DEEP = "\x00deep"  # placeholders: replaced in the JSON text by what json.dumps cannot write
LONG_INT = "\x00long"
RAW = {json.dumps(DEEP): "[" * 100_000 + "]" * 100_000, json.dumps(LONG_INT): "9" * 5000}

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 10**30, 10**400, DEEP, LONG_INT]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
JUNK = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int64, torch.bool]
TENSOR_OPS = ["dtype", "transpose", "flatten", "unsqueeze", "scalar", "truncate", "extend", "delete"]
TENSOR_OPS += ["rename", "nan"]


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """Header and tensors of each small saved model, by preset."""
    root = tmp_path_factory.mktemp("fuzz-models")
    out = {}
    for preset in ("default", "patch"):
        path = root / f"{preset}.mmocc"
        MultimodalOCC(preset=preset, epochs=1, filters=(4,), random_state=0).fit(X).save(path)
        out[preset] = read_config(path)
    return out


Selector = int | str
HEADER_OPS = ["replace", "delete", "add"]
SELECTORS = st.integers(0, 2**16) | st.sampled_from(["views", "params", "metadata", "estimator_params"])
HEADER_MUTATIONS = st.tuples(st.lists(SELECTORS, min_size=1, max_size=4), st.sampled_from(HEADER_OPS), JUNK)


def _index(selector: Selector, size: int) -> int:
    """An integer selector modulo ``size``; 0 for a name that is not there."""
    return selector % size if isinstance(selector, int) else 0


def _resolve(header: dict[str, Any], selectors: list[Selector]) -> list[Any]:
    """Turn selectors into a path of keys and indices that exists in ``header``.

    A string is a key (used when present); an integer picks a key (sorted) or
    an index modulo the size; the path stops where there is nothing to descend into.
    """
    path: list[Any] = []
    node: Any = header
    for selector in selectors:
        if not isinstance(node, (dict, list)) or not node:
            break
        if isinstance(node, dict):
            keys = sorted(node)
            key = selector if selector in node else keys[_index(selector, len(keys))]
        else:
            key = _index(selector, len(node))
        path.append(key)
        node = node[key]
    return path


def mutate_header(header: dict[str, Any], mutation: tuple[list[Selector], str, Any]) -> dict[str, Any]:
    """Return a copy of ``header`` with the value at the selected path deleted, extended or replaced."""
    selectors, operation, value = mutation
    header = json.loads(json.dumps(header))
    path = _resolve(header, selectors)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    if operation == "delete":
        del parent[path[-1]]
    elif operation == "add" and isinstance(parent[path[-1]], dict):
        parent[path[-1]]["zz_added"] = value
    else:
        parent[path[-1]] = value
    return header


def _reshaped(tensor: torch.Tensor, operation: str, count: int) -> torch.Tensor:
    """Apply a shape mutation to ``tensor``."""
    flat = tensor.reshape(-1)
    if operation == "transpose":
        reverse = tuple(reversed(range(tensor.ndim)))
        return tensor.permute(reverse).contiguous() if tensor.ndim >= 2 else flat[:, None]
    if operation == "flatten":
        return flat.clone()
    if operation == "unsqueeze":
        return tensor.unsqueeze(0).clone()
    if operation == "scalar":
        return flat[0].clone() if len(flat) else torch.zeros(())
    if operation == "truncate":
        return tensor[:count].clone() if tensor.ndim else flat[:count].clone()
    return torch.cat([tensor, tensor[:count]]) if tensor.ndim else flat.repeat(count + 1)


TENSOR_MUTATIONS = st.tuples(
    st.integers(0, 2**16), st.sampled_from(TENSOR_OPS), st.sampled_from(DTYPES), st.integers(0, 3)
)


def mutate_tensors(
    tensors: dict[str, torch.Tensor], mutation: tuple[Selector, str, torch.dtype, int]
) -> dict[str, torch.Tensor]:
    """Return a copy of ``tensors`` with one tensor's dtype or shape changed, or removed, renamed or NaN.

    The tensor is named, or picked by an integer modulo the number of tensors.
    """
    selector, operation, dtype, count = mutation
    tensors = dict(tensors)
    names = sorted(tensors)
    name = selector if selector in tensors else names[_index(selector, len(names))]
    tensor = tensors.pop(name)
    if operation == "rename":
        tensors[f"{name}_renamed"] = tensor
    elif operation == "dtype":
        tensors[name] = tensor.to(dtype)
    elif operation == "nan":
        tensors[name] = _with_nan(tensor)
    elif operation != "delete":
        tensors[name] = _reshaped(tensor, operation, count)
    return tensors


def _with_nan(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` with its first value NaN (as float64 if it is not floating)."""
    out = tensor.clone() if tensor.is_floating_point() else tensor.double()
    if out.numel():
        out.view(-1)[0] = float("nan")
    return out


def write(path: Path, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Write a model file, putting the raw JSON that json.dumps cannot make where the placeholders are."""
    text = json.dumps(header)
    for placeholder, raw in RAW.items():
        text = text.replace(placeholder, raw)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"mmocc": text})


def check_loads_or_refuses(folder: Path, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """The property: finite scores, or an expected error (naming the file at load); fast; no file left."""
    path = folder / "mutated.mmocc"
    write(path, header, tensors)
    start = time.perf_counter()
    try:
        clf = mmocc.load(path)
    except ALLOWED as exc:
        assert path.name in str(exc), f"{type(exc).__name__} without the file name: {exc}"
    else:
        try:
            scores = clf.decision_function(X)
        except ALLOWED:
            pass
        else:
            assert np.isfinite(scores).all(), scores
    assert time.perf_counter() - start < SECONDS_PER_EXAMPLE
    assert [p.name for p in folder.iterdir()] == ["mutated.mmocc"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder for the examples' files (each example makes and removes its own subfolder)."""
    return tmp_path_factory.mktemp("fuzz-files")


PRESETS = st.sampled_from(["default", "patch"])
AUDITED_HEADERS = [
    (["views"], "delete", None),
    (["params"], "delete", None),
    (["n_samples_in"], "delete", None),
    (["params", "knn_space"], "delete", None),
    (["metadata"], "replace", ["normal", "bee"]),
    (["views", 0, "shape"], "replace", [1, 4000, 4000]),
    (["views", 0, "shape"], "replace", [10**12]),
    (["params", "filters"], "replace", [10**6]),
    (["estimator_params"], "add", 1),
    (["threshold"], "replace", DEEP),
    (["n_samples_in"], "replace", LONG_INT),
]
AUDITED_TENSORS = [
    ("decision_scores", "delete", torch.float64, 0),
    ("decision_scores", "nan", torch.float64, 0),
    ("decision_scores", "dtype", torch.int8, 0),
    ("rule.mean", "delete", torch.float64, 0),
    ("rule.bank.latent:group_0", "transpose", torch.float32, 0),
    ("rule.bank.group_0", "transpose", torch.float32, 0),
    ("rule.bank.input:group_0", "dtype", torch.bfloat16, 0),
    ("model.encoders.group_0.layers.0.weight", "nan", torch.float32, 0),
]


def _with_examples(cases: list[Any], name: str) -> Any:
    """Add each audited case as an explicit example, for both models (run in every profile)."""

    def decorate(test: Any) -> Any:
        for case in cases:
            for preset in ("default", "patch"):
                test = example(preset=preset, **{name: case})(test)
        return test

    return decorate


@_with_examples(AUDITED_HEADERS, "mutation")
@given(preset=PRESETS, mutation=HEADER_MUTATIONS)
def test_mutated_header_loads_and_scores_or_is_refused_naming_the_file(originals, scratch, preset, mutation):
    header, tensors = originals[preset]
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        check_loads_or_refuses(Path(folder), mutate_header(header, mutation), tensors)


@_with_examples(AUDITED_TENSORS, "mutation")
@given(preset=PRESETS, mutation=TENSOR_MUTATIONS)
def test_mutated_tensor_loads_and_scores_or_is_refused_naming_the_file(originals, scratch, preset, mutation):
    header, tensors = originals[preset]
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        check_loads_or_refuses(Path(folder), header, mutate_tensors(tensors, mutation))
