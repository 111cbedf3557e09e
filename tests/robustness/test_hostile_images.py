"""Hostile image files: a rewrite the cache must notice, turned photos, deep pixels, two Unicode forms.

Each test is named after its case and failed before the fix.
"""

from __future__ import annotations

import os
import time
import unicodedata

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmocc import MultimodalOCC
from mmocc.cli.main import cli
from mmocc.data.images import decode_files, decode_image
from mmocc.data.sources import load_source
from mmocc.datasets import load_pairs


def test_a_same_size_rewrite_with_its_mtime_restored_is_decoded_again(tmp_path):
    path = tmp_path / "a.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    before = os.stat(path)
    first, _ = decode_files([path], size=8, mode="RGB", cache_dir=tmp_path / "cache")
    time.sleep(0.02)  # past a coarse-grained file system clock
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)  # in place, same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r: size and mtime as before
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again, _ = decode_files([path], size=8, mode="RGB", cache_dir=tmp_path / "cache")
    assert np.array_equal(again[0], decode_image(path, 8, "RGB"))
    assert not np.array_equal(again, first)


def test_cache_clear_removes_the_entries_only_and_no_cache_writes_none(tmp_path, monkeypatch, ds_write_image):
    for i in range(4):
        ds_write_image(tmp_path / "data" / f"s{i}" / "left.png", value=i)
    decode_files([tmp_path / "data" / "s0" / "left.png"], size=4, mode="RGB", cache_dir=tmp_path / "cache")
    (tmp_path / "cache" / "notes.txt").write_text("not mine")
    result = CliRunner().invoke(cli, ["cache", "clear", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0 and result.output.startswith("removed 1 cache entries")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["notes.txt"]
    model = tmp_path / "m.mmocc"
    train = load_source(str(tmp_path / "data"), size=8, cache=False)
    MultimodalOCC(epochs=1, filters=(4,), random_state=0, device="cpu").fit(train).save(model)
    monkeypatch.setenv("MMOCC_CACHE_DIR", str(tmp_path / "env-cache"))
    argv = ["score", str(model), "--data", str(tmp_path / "data"), "--out", "-", "--device", "cpu", "-q"]
    result = CliRunner().invoke(cli, [*argv, "--no-cache"])
    assert result.exit_code == 0 and result.output.count("\n") == 5
    assert not (tmp_path / "env-cache").exists()
    result = CliRunner().invoke(cli, [*argv, "--no-cache", "-O", "cache=true"])
    assert result.exit_code == 2 and "give --no-cache or -O cache=..., not both" in result.output


def test_exif_orientation_is_applied_as_viewers_show_it(tmp_path):
    pixels = np.zeros((6, 10), np.uint8)
    pixels[0] = 255  # the top row, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored turned: viewers rotate it 90 degrees clockwise
    image.save(tmp_path / "turned.png", exif=exif)
    upright = decode_image(tmp_path / "turned.png", 10, "L", "pad")[0]
    assert upright[:, 7].min() == 255 and upright[:, :7].max() == 0  # the right column of a 6 x 10 portrait
    assert upright[:, 8:].max() == 0  # padding


def test_float_and_deep_integer_images_are_scaled_or_refused_never_clipped(tmp_path):
    half = np.full((8, 8), 0.5, np.float32)
    Image.fromarray(half).save(tmp_path / "unit.tif")
    assert decode_image(tmp_path / "unit.tif", 4, "L").max() == 128  # [0, 1] scaled, not clipped to 0
    Image.fromarray(half * 6).save(tmp_path / "wide.tif")
    with pytest.raises(ValueError, match=r"a float image with values in \[3, 3\]; float images are read on"):
        decode_image(tmp_path / "wide.tif", 4, "L")
    Image.fromarray(np.full((8, 8), 40000, np.int32)).save(tmp_path / "deep.tif")
    assert decode_image(tmp_path / "deep.tif", 4, "L").max() == 40000 >> 8  # 16-bit range, not 255
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(tmp_path / "deeper.tif")
    _, errors = decode_files([tmp_path / "deeper.tif"], size=4, mode="L", cache=False)
    assert "outside the 16-bit range 0-65535" in str(errors[0])


def test_file_names_in_nfc_and_nfd_pair(tmp_path):
    name = "café"
    for view, form in (("left", "NFC"), ("right", "NFD")):
        (tmp_path / view).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / view / f"{unicodedata.normalize(form, name)}.png")
    pairs = load_pairs({"left": tmp_path / "left", "right": tmp_path / "right"}, size=8, cache=False)
    assert pairs.ids.tolist() == [unicodedata.normalize("NFC", name)]
