"""Where a new user's files may be: manifest paths anywhere (and ``root``), masks beside folder images.

A manifest reads absolute paths and paths that leave its folder, or resolves
its relative paths against the ``root`` option; what is not a regular file is
still refused. The folder and pairs sources take an ``extensions`` option and
read a view's mask from ``<view>_mask.<ext>``, or from ``<view>.<ext>`` of an
extension the option leaves out.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc.data.folder import image_extensions
from mmocc.data.sources import parse_source
from mmocc.data.tasks import one_class_split
from mmocc.datasets import load_folder, load_manifest, load_pairs

pytestmark = pytest.mark.usefixtures("ds_cache_dir")

HEIGHT, WIDTH = 12, 10


def write_mask(path: Path, rows: slice = slice(0, 3), cols: slice = slice(0, 3)) -> Path:
    """Save a ``HEIGHT`` x ``WIDTH`` mask (the images' size) whose ``[rows, cols]`` block is a defect."""
    pixels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    pixels[rows, cols] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


# --- manifest paths -------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path, ds_write_image) -> Path:
    """An image store ``store/img/{0,1,2}.png`` (one mask, for 1) and an empty manifest folder ``lists/``."""
    for i in range(3):
        ds_write_image(tmp_path / "store" / "img" / f"{i}.png", value=i)
    write_mask(tmp_path / "store" / "masks" / "1.png")
    (tmp_path / "lists").mkdir()
    return tmp_path / "store"


def write_manifest(path: Path, prefix: str) -> Path:
    """A manifest of the store's three images, each path written as ``prefix`` + ``img/<i>.png``."""
    rows = ["sample_id,label,top,mask_top"]
    rows += [f"s{i},{i},{prefix}img/{i}.png,{f'{prefix}masks/1.png' if i == 1 else ''}" for i in range(3)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_manifest_reads_paths_outside_its_folder(store, form):
    prefix = f"{store}/" if form == "absolute" else "../store/"
    ds = load_manifest(write_manifest(store.parent / "lists" / "m.csv", prefix), size=6)
    assert ds.paths["top"].tolist() == [str(store / "img" / f"{i}.png") for i in range(3)]
    assert ds.mask_paths["top"].tolist() == ["", str(store / "masks" / "1.png"), ""]
    assert ds.masks["top"].sum(axis=(1, 2)).tolist()[0] == 0 and ds.masks["top"][1, 0, 0]


def test_root_option_resolves_relative_paths_and_leaves_absolute_ones(store, ds_write_image):
    csv = write_manifest(store.parent / "lists" / "m.csv", "")
    with pytest.raises(FileNotFoundError, match=r"line 2 .*view 'top': file not found"):
        load_manifest(csv, size=6)
    ds = parse_source(str(csv)).load(root=str(store), size=6)
    assert ds.paths["top"][2] == str(store / "img" / "2.png")
    assert ds.mask_paths["top"][1] == str(store / "masks" / "1.png")
    other = ds_write_image(store.parent / "elsewhere" / "x.png", value=9)
    csv.write_text(csv.read_text().replace("img/2.png", str(other)))
    assert load_manifest(csv, size=6, root=store).paths["top"][2] == str(other)


def test_root_option_relative_to_the_working_folder(store, monkeypatch):
    csv = write_manifest(store.parent / "lists" / "m.csv", "")
    monkeypatch.chdir(store.parent)
    assert load_manifest(csv, size=6, root="store").paths["top"][0] == str(store / "img" / "0.png")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_root_that_is_not_a_folder_is_named(store, kind):
    csv = write_manifest(store.parent / "lists" / "m.csv", "")
    root = store / "img" / "0.png" if kind == "file" else store / "nope"
    expected = "is not a folder" if kind == "file" else "does not exist"
    with pytest.raises(FileNotFoundError, match=f"m.csv: root folder '{root}' .*{expected}"):
        load_manifest(csv, size=6, root=root)
    with pytest.raises(ValueError, match="the folder source has no option 'root'"):
        parse_source(str(store)).load(root=str(store))


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_what_is_not_a_regular_file_is_still_refused(store, kind):
    target = store / "special"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    csv = write_manifest(store.parent / "lists" / "m.csv", f"{store}/")
    csv.write_text(csv.read_text().replace(f"{store}/img/2.png", str(target)))
    with pytest.raises(ValueError, match=r"line 4 .*view 'top'.*not a regular file"):
        load_manifest(csv, size=6, cache=False)
    with pytest.warns(UserWarning, match="special"):
        assert len(load_manifest(csv, size=6, cache=False, on_error="skip")) == 2


def test_a_nul_character_is_still_refused(store):
    csv = write_manifest(store.parent / "lists" / "m.csv", "")
    csv.write_text(csv.read_text().replace("img/0.png", "img/0\x00.png"))
    with pytest.raises(ValueError, match="line 2 .*contains a NUL character"):
        load_manifest(csv, size=6, root=store)


# --- the extensions option -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("jpg", {".jpg"}), ("JPG, .jpeg", {".jpg", ".jpeg"}), ([".png", "tif"], {".png", ".tif"}), (None, None)],
)
def test_extensions_forms(value, expected):
    assert image_extensions(value) == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("jpg,txt", ValueError, "'txt' is not an image extension; choose among bmp, gif, jpeg, jpg"),
        ("", ValueError, "'' is not an image extension"),
        ([], ValueError, "give at least one"),
        (5, TypeError, "extensions must be a string"),
    ],
)
def test_bad_extensions(value, error, match):
    with pytest.raises(error, match=match):
        image_extensions(value)


# --- folder masks ----------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path, ds_write_image) -> Path:
    """root/<label>/<sample>/{top,side}.jpg; good/s0..s2 without masks, crack/s0, s1 with masks.

    crack/s0 has ``top.png`` beside ``top.jpg``, crack/s1 has ``side_mask.png``.
    """
    root = tmp_path / "photos"
    for label, n in (("good", 3), ("crack", 2)):
        for k in range(n):
            for v, view in enumerate(("top", "side")):
                ds_write_image(root / label / f"s{k}" / f"{view}.jpg", value=10 * k + v)
    write_mask(root / "crack" / "s0" / "top.png")
    write_mask(root / "crack" / "s1" / "side_mask.png", rows=slice(9, 12), cols=slice(7, 10))
    return root


def test_an_image_and_its_mask_of_one_stem_need_the_extensions_option(photos):
    expected = r"s0: two files for view 'top': top\.jpg, top\.png; .*-O extensions=jpg"
    with pytest.raises(ValueError, match=expected):
        load_folder(photos, size=6)


def test_folder_masks_beside_the_images(photos):
    ds = parse_source(f"folder:{photos}").load(extensions="jpg", size=6)
    assert ds.view_names == ["side", "top"] and ds.ids.tolist()[:2] == ["crack/s0", "crack/s1"]
    assert set(ds.masks) == {"side", "top"} and ds.masks["top"].shape == (5, 6, 6)
    assert ds.mask_paths["top"].tolist() == [str(photos / "crack" / "s0" / "top.png"), "", "", "", ""]
    assert ds.mask_paths["side"][1] == str(photos / "crack" / "s1" / "side_mask.png")
    assert ds.masks["top"][0, 0, 0] and not ds.masks["top"][0, -1, -1]
    assert ds.masks["side"][1, -1, -1] and not ds.masks["side"][1, 0, 0]
    defective = ds.masks["top"].any(axis=(1, 2)) | ds.masks["side"].any(axis=(1, 2))
    assert defective.tolist() == [True, True, False, False, False]


def test_folder_masks_stay_aligned_after_a_split(photos):
    ds = load_folder(photos, size=6, extensions="jpg")
    task = one_class_split(ds, "good", train_fraction=0.67, seed=0)
    test = task.test
    for i, sample_id in enumerate(test.ids.tolist()):
        j = ds.ids.tolist().index(sample_id)
        assert np.array_equal(test.masks["top"][i], ds.masks["top"][j])
        assert test.mask_paths["side"][i] == ds.mask_paths["side"][j]


def test_mask_suffix_alone_needs_no_option(photos):
    (photos / "crack" / "s0" / "top.png").rename(photos / "crack" / "s0" / "top_mask.png")
    ds = load_folder(photos, size=6)
    assert ds.mask_paths["top"][0].endswith("top_mask.png") and ds.view_names == ["side", "top"]


def test_without_mask_files_there_are_no_masks(photos):
    (photos / "crack" / "s0" / "top.png").unlink()
    (photos / "crack" / "s1" / "side_mask.png").unlink()
    ds = load_folder(photos, size=6)
    assert ds.masks == {} and ds.mask_paths == {}


def test_extensions_choose_the_images(photos, ds_write_image):
    ds_write_image(photos / "good" / "s0" / "notes.png")  # no notes.jpg: not an image, not a mask
    ds = load_folder(photos, size=6, extensions="jpg")
    assert ds.view_names == ["side", "top"] and len(ds) == 5


def test_a_mask_without_its_image_is_named(photos):
    write_mask(photos / "good" / "s1" / "bottom_mask.png")
    with pytest.raises(ValueError, match=r"s1/bottom_mask\.png: a mask without its image: no bottom\.<ext>"):
        load_folder(photos, size=6, extensions="jpg")


def test_two_masks_for_one_view_are_named(photos):
    write_mask(photos / "crack" / "s0" / "top_mask.png")
    with pytest.raises(ValueError, match=r"s0: two masks for top\.jpg: top\.png, top_mask\.png"):
        load_folder(photos, size=6, extensions="jpg")


def test_a_mask_of_another_size_is_named(photos):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(photos / "crack" / "s0" / "top.png")
    with pytest.raises(ValueError, match=r"crack/s0.*top.*size"):
        load_folder(photos, size=6, extensions="jpg")


# --- pairs masks -----------------------------------------------------------------------------------


def test_pairs_masks_beside_the_camera_images(tmp_path, ds_write_image):
    for k in range(3):
        for camera in ("cam1", "cam2"):
            ds_write_image(tmp_path / camera / f"{k:04d}.jpg", value=k)
    write_mask(tmp_path / "cam1" / "0001.png")
    write_mask(tmp_path / "cam2" / "0002_mask.png")
    with pytest.raises(ValueError, match="two files with the stem '0001'.*-O extensions=jpg"):
        load_pairs([tmp_path / "cam1", tmp_path / "cam2"], size=6)
    ds = parse_source(f"pairs:{tmp_path / 'cam1'},{tmp_path / 'cam2'}").load(size=6, extensions="jpg")
    assert ds.ids.tolist() == ["0000", "0001", "0002"]
    assert ds.mask_paths["cam1"].tolist() == ["", str(tmp_path / "cam1" / "0001.png"), ""]
    assert ds.mask_paths["cam2"].tolist() == ["", "", str(tmp_path / "cam2" / "0002_mask.png")]
    assert ds.masks["cam1"].any(axis=(1, 2)).tolist() == [False, True, False]
