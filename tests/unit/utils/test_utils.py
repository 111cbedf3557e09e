"""mmocc.utils: atomic writes, stale temporary files, UTF-8 reading, safe names, did-you-mean, values."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from mmocc.utils.files import (
    TEMP_NAME,
    atomic_open,
    atomic_path,
    check_output_file,
    read_utf8,
    remove_stale_temporaries,
    write_json,
)
from mmocc.utils.text import did_you_mean, parse_assignments, safe_name


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


def test_only_regular_files_are_written(tmp_path):
    check_output_file(tmp_path / "new.txt")
    check_output_file(tmp_path / "missing-folder" / "new.txt")
    (tmp_path / "plain.txt").write_text("x")
    check_output_file(tmp_path / "plain.txt")
    (tmp_path / "dangling").symlink_to("nowhere.txt")
    with pytest.raises(
        ValueError, match=r"dangling: it is a symbolic link to nowhere.txt, not a regular file"
    ):
        write_json(tmp_path / "dangling", {})
    with pytest.raises(ValueError, match="it is a folder, not a regular file"):
        write_json(tmp_path, {})
    assert (tmp_path / "dangling").is_symlink() and not (tmp_path / "nowhere.txt").exists()


def test_an_error_naming_another_file_is_raised_unchanged(tmp_path):
    other = FileNotFoundError(2, "No such file or directory", "/elsewhere/input.png")
    with pytest.raises(FileNotFoundError) as exc_info, atomic_path(tmp_path / "out.txt"):
        raise other
    assert exc_info.value is other and list(tmp_path.iterdir()) == []


def test_long_names_get_a_short_temporary_name(tmp_path):
    target = tmp_path / ("n" * 240 + ".json")
    with atomic_path(target) as tmp:
        assert TEMP_NAME.fullmatch(tmp.name) and len(tmp.name) < 100
        tmp.write_text("{}")
    assert target.read_text() == "{}"


def test_temporaries_of_live_writers_and_other_files_are_kept(tmp_path):
    live = tmp_path / f".a.csv.mmocc-{os.getpid()}-abcdefgh.tmp"
    link = tmp_path / ".b.csv.mmocc-9999999-abcdefgh.tmp"
    folder = tmp_path / ".c.csv.mmocc-9999999-abcdefgh.tmp"
    live.write_text("")
    link.symlink_to(live)
    folder.mkdir()
    remove_stale_temporaries(tmp_path)
    remove_stale_temporaries(tmp_path / "missing")
    assert live.exists() and link.is_symlink() and folder.is_dir()


def test_read_utf8(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb")
    assert read_utf8(path, bom=True) == "a\r\nb" and read_utf8(path) == "\ufeffa\r\nb"
    path.write_bytes("a\nb\nc\u00e9".encode("utf-16"))
    with pytest.raises(
        ValueError, match=r"t.txt: not UTF-8: byte 0xff at offset 0 \(line 1\); it looks like UTF-16"
    ):
        read_utf8(path)


def test_temporaries_of_other_hosts_wait_for_the_idle_limit(tmp_path):
    from mmocc.utils.files import HOST_TAG, STALE_AFTER_S

    other_host = "0" * 8 if HOST_TAG != "0" * 8 else "1" * 8
    mine = tmp_path / f".a.csv.mmocc-9999999-{HOST_TAG}-abcdefgh.tmp"
    theirs = tmp_path / f".b.csv.mmocc-9999999-{other_host}-abcdefgh.tmp"
    idle = tmp_path / f".c.csv.mmocc-9999999-{other_host}-abcdefgh.tmp"
    for path in (mine, theirs, idle):
        path.write_text("")
    old = time.time() - STALE_AFTER_S - 10
    os.utime(idle, (old, old))
    remove_stale_temporaries(tmp_path)
    assert not mine.exists() and theirs.exists() and not idle.exists()


def test_temporary_names_carry_this_host(tmp_path):
    from mmocc.utils.files import HOST_TAG

    with atomic_path(tmp_path / "out.txt") as tmp:
        match = TEMP_NAME.fullmatch(tmp.name)
        assert match and match["host"] == HOST_TAG and int(match["pid"]) == os.getpid()
        tmp.write_text("x")
