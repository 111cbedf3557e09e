"""mmocc.utils: atomic writes, safe names, did-you-mean, value parsing."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mmocc.utils import atomic_open, atomic_path, did_you_mean, parse_assignments, safe_name, write_json


def test_atomic_write_appears_whole_with_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
    finally:
        os.umask(old)
    path = tmp_path / "sub" / "a.json"
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_atomic_replace_keeps_the_target_mode(tmp_path):
    target = tmp_path / "shared.json"
    target.write_text("{}")
    target.chmod(0o640)
    write_json(target, {"y": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and json.loads(target.read_text()) == {"y": 1}


def test_model_files_get_the_umask_mode(tmp_path):
    import numpy as np

    from mmocc import MultimodalOCC

    rng = np.random.default_rng(0)
    X = {"a": rng.random((12, 1, 8, 8)).astype(np.float32)}
    clf = MultimodalOCC(epochs=1, filters=(4,), random_state=0).fit(X)
    old = os.umask(0o022)
    try:
        clf.save(tmp_path / "m.mmocc")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.mmocc").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_names_and_hints():
    assert safe_name("obj_3") == "obj_3" and safe_name("a/b") != safe_name("a_b")
    assert did_you_mean("knm", ["knn", "pca"]) == "; did you mean 'knn'?"
    assert did_you_mean("zzz", ["knn"]) == ""
    assert parse_assignments(["a=1", "b=[8, 4]", "c=x"], "--param") == {"a": 1, "b": [8, 4], "c": "x"}
    with pytest.raises(ValueError, match="--param expects KEY=VALUE, got 'nokey'"):
        parse_assignments(["nokey"], "--param")
