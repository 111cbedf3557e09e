"""Fuzzing ``load_manifest`` with hostile CSV manifests.

Property: loading either returns a data set or raises ValueError, TypeError
or OSError (FileNotFoundError included) whose message names the manifest or
the offending image file; never another exception, never a hang, never a
file left behind. Columns (duplicates, empty, unicode, reserved names),
encodings (UTF-8 with and without a byte-order mark, Latin-1, UTF-16, random
bytes), rows with the wrong number of fields and paths (absolute, ``..``,
missing, folders, tiny images, non-images, named pipes, link loops, NUL
characters, overlong names and fields) are drawn at
random. ``pytest --hypothesis-profile=long tests/robustness/test_fuzz_manifest.py``
searches longer.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mmocc.datasets import MultiViewDataset, load_manifest

MANIFEST = "m.csv"
RESERVED = ["sample_id", "label", "group"]
PATHS = [
    "img/a.png",
    "img/b.png",
    "img/c.jpg",
    "./img/a.png",
    "img/../img/b.png",
    "notes.txt",
    "empty.png",
    "pipe.png",
    "loop.png",
    "img/a\x00.png",
    "f" * 140_000,
    "img",
    "missing.png",
    "../outside.png",
    "/etc/hostname",
    "x" * 300 + ".png",
    "",
    " ",
]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A manifest folder with tiny images, a non-image, an empty file, a named pipe, a symbolic-link
    loop and a sub-folder; an image outside it."""
    base = tmp_path_factory.mktemp("fuzz")
    folder = base / "data"
    (folder / "img").mkdir(parents=True)
    pixels = np.arange(30, dtype=np.uint8).reshape(5, 6)
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / "img" / "a.png")
    Image.fromarray(pixels).save(folder / "img" / "b.png")
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / "img" / "c.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    os.mkfifo(folder / "pipe.png")
    (folder / "loop.png").symlink_to("loop.png")
    Image.fromarray(pixels).save(base / "outside.png")
    return folder


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder``."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread when the block runs longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"load_manifest ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


names = st.one_of(st.sampled_from([*RESERVED, "left", "right", "", " label "]), st.text(max_size=8))
cells = st.one_of(st.sampled_from(PATHS), st.text(max_size=12), st.sampled_from(["0", "1", "ant", "-3"]))


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """The bytes of a CSV manifest: usually plausible, sometimes broken in one or several ways."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    header = draw(st.lists(names, max_size=5))
    if draw(st.integers(0, 3)):
        header.insert(draw(st.integers(0, len(header))), "sample_id")
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        width = len(header) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        rows.append(draw(st.lists(cells, min_size=max(width, 0), max_size=max(width, 0))))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])))
    writer.writerows([header, *rows])
    text = buffer.getvalue()
    if draw(st.booleans()):
        text = text.replace(",", draw(st.sampled_from([";", "\t", ",,", '"'])), 1)
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


@given(data=manifests(), on_error=st.sampled_from(["raise", "skip"]))
def test_load_manifest_returns_or_raises_an_error_naming_the_file(root, data, on_error):
    path = root / MANIFEST
    path.write_bytes(data)
    before = snapshot(root.parent)
    try:
        with deadline(10), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = load_manifest(path, size=8, cache=False, on_error=on_error, n_jobs=1)
    except (ValueError, TypeError, OSError) as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert MANIFEST in message or str(root) in message, message
    else:
        assert isinstance(dataset, MultiViewDataset) and len(dataset) >= 1
        assert all(view.shape[1:] in ((1, 8, 8), (3, 8, 8)) for view in dataset.views.values())
    finally:
        path.unlink()
    assert snapshot(root.parent) == before - {f"data/{MANIFEST}"}
