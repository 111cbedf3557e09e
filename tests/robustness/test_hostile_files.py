"""Hostile files, full disks and interruptions: one test per case of the robustness audit.

Each test failed on the code before its fix. The command-line cases run
``mmocc.cli.main`` in-process, on a tiny model trained once for the module.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc.cli import main
from mmocc.data import images
from mmocc.data.cache import store
from mmocc.data.images import decode_files
from mmocc.datasets import load_manifest
from mmocc.deploy import batch as batch_scoring
from mmocc.evaluation.config import load_config
from mmocc.utils.files import atomic_path, write_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--epochs", "1", "-p", "filters=[4,4]", "--threads", "1", "--size", "8", "-O", "cache=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder data set root/<label>/<sample>/{left,right}.png: 2 labels x 6 samples of 12x12 RGB."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    rng = np.random.default_rng(0)
    for label, offset in (("ant", 0), ("bee", 120)):
        for i in range(6):
            for view in ("left", "right"):
                path = root / label / f"s{i}" / f"{view}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((rng.integers(0, 60, (12, 12, 3)) + offset).astype(np.uint8)).save(path)
    return root


@pytest.fixture(scope="module")
def model(data):
    """A tiny model trained through the command line, in-process."""
    path = data.parent / "m.mmocc"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(data), "--normal", "bee", "--quiet", *TINY, "--out", str(path)])
    assert exit_info.value.code == 0
    return path


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def score_args(model, data, out):
    return ["score", model, "--data", data, "-O", "cache=false", "--quiet", "--out", out]


def leftovers(folder: Path) -> list[str]:
    """Names of temporary files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def make_target(kind: str, path: Path) -> None:
    """Create a symlink to a regular file, a FIFO or a character device (a /dev/null twin) at ``path``."""
    if kind == "symlink":
        (path.parent / "real.csv").write_text("old")
        path.symlink_to("real.csv")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root")


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device"])
def test_out_never_replaces_a_symlink_fifo_or_device(capsys, tmp_path, data, model, kind):
    target = tmp_path / "out.csv"
    make_target(kind, target)
    before = target.lstat()
    status, out, err = run_main(capsys, *score_args(model, data, target))
    assert status == 2 and out == ""
    assert err.startswith("mmocc: error: ") and err.count("\n") == 1 and str(target) in err
    with pytest.raises(ValueError, match="not a regular file") as exc_info:
        write_json(target, {"x": 1})
    assert str(target) in str(exc_info.value)
    after = target.lstat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert leftovers(tmp_path) == []
    if kind == "symlink":
        assert (tmp_path / "real.csv").read_text() == "old"


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_is_one_oserror_naming_the_target_and_leaves_no_temp_file(
    capsys, monkeypatch, tmp_path, data, model, where
):
    target = tmp_path / "out.json"
    if where == "fsync":
        monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as exc_info, atomic_path(target) as tmp:
        tmp.write_text("{}")
        if where == "write":
            no_space()
    assert exc_info.value.errno == errno.ENOSPC and str(target) in str(exc_info.value)
    assert "\n" not in str(exc_info.value) and leftovers(tmp_path) == []

    monkeypatch.setattr(os, "fsync", no_space)
    status, _, err = run_main(capsys, *score_args(model, data, tmp_path / "s.csv"))
    assert status == 2 and err == f"mmocc: error: {tmp_path / 's.csv'}: No space left on device\n"
    entry = tmp_path / "cache" / "images-entry.bin"
    message = f"could not write image cache {entry}: No space left on device"
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}$"):
        store(entry, np.zeros((2, 1, 4, 4), dtype=np.uint8))
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "cache") == []


def test_cache_corruption_that_keeps_the_file_size_is_a_miss_with_one_warning(
    monkeypatch, tmp_path, ds_write_image
):
    files = [ds_write_image(tmp_path / "img" / f"{i}.png", value=i) for i in range(4)]
    decodes = []
    real = images.decode_image
    monkeypatch.setattr(images, "decode_image", lambda *a: decodes.append(a) or real(*a))
    expected, _ = decode_files(files, size=6, mode="RGB", cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("images-*")
    data = bytearray(entry.read_bytes())
    data[-5] ^= 0xFF  # one pixel of the last image; same size, valid header
    entry.write_bytes(bytes(data))
    message = f"ignoring image cache entry {entry}: checksum mismatch"
    with pytest.warns(RuntimeWarning, match=re.escape(message)) as got:
        again, _ = decode_files(files, size=6, mode="RGB", cache_dir=tmp_path / "cache")
    assert len(got) == 1 and len(decodes) == 8 and np.array_equal(again, expected)
    third, _ = decode_files(files, size=6, mode="RGB", cache_dir=tmp_path / "cache")
    assert len(decodes) == 8 and np.array_equal(third, expected)


def test_non_utf8_manifest_and_toml_name_the_file_and_the_byte(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"sample_id,a\ns1,caf\xe9.png\n")
    with pytest.raises(ValueError, match=r"m\.csv: not UTF-8: byte 0xe9 at offset 18 \(line 2\)"):
        load_manifest(manifest, size=8, cache=False)
    config = tmp_path / "c.toml"
    config.write_bytes(b"seeds = [0]\n# caf\xe9\n")
    with pytest.raises(ValueError, match=r"c\.toml: not UTF-8: byte 0xe9 at offset 17 \(line 2\)"):
        load_config(config)


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("writer", ["json", "cache"])
def test_stale_temp_files_of_dead_writers_are_removed_on_the_next_write(tmp_path, ds_write_image, writer):
    folder = tmp_path / "cache"
    folder.mkdir()
    stale = folder / f".images-abc.bin.mmocc-{dead_pid()}-abcd_123.tmp"
    old = folder / f".x.mmocc.mmocc-{os.getpid()}-zzzzzzzz.tmp"
    live = folder / f".y.json.mmocc-{os.getpid()}-yyyyyyyy.tmp"
    others = [folder / ".notes.tmp", folder / ".x.mmocc.abcdefgh.tmp", folder / f"x.mmocc-{dead_pid()}-a.tmp"]
    for path in (stale, old, live, *others):
        path.write_bytes(b"\0" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    if writer == "json":
        with atomic_path(folder / "z.json") as tmp:
            assert tmp.name.startswith(f".z.json.mmocc-{os.getpid()}-")
            tmp.write_text("{}")
    else:
        decode_files([ds_write_image(tmp_path / "a.png")], size=4, mode="L", cache_dir=folder)
    assert not stale.exists() and not old.exists()
    assert live.exists() and all(path.exists() for path in others)


class Unhandled(BaseException):
    """What SIGTERM raises when mmocc leaves it alone."""


def test_sigterm_during_score_exits_143_and_leaves_no_temp_file(capsys, monkeypatch, tmp_path, data, model):
    def unhandled(signum, frame):
        raise Unhandled

    real = batch_scoring.score_columns
    chunks = []

    def terminated_on_the_second_chunk(*args):
        chunks.append(1)
        if len(chunks) == 2:
            signal.raise_signal(signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(batch_scoring, "score_columns", terminated_on_the_second_chunk)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        status, out, err = run_main(capsys, *score_args(model, data, tmp_path / "s.csv"), "--batch-size", "4")
        restored = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert status == 143 and out == "" and err == "mmocc: terminated\n"
    assert list(tmp_path.iterdir()) == [] and restored is unhandled


def test_no_arguments_prints_the_usual_help_not_an_error_line(capsys):
    status, out, err = run_main(capsys)
    assert status == 0 and err == ""
    assert out.startswith("Usage: mmocc [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n" in out and "error" not in out
