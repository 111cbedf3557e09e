"""The MVTec AD layout as a source, ``mvtec:PATH``: one view or one folder of views per sample, with masks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc.data.dataset import MultiViewDataset, concat_datasets
from mmocc.data.mvtec import load_mvtec, mvtec_task, plan_mvtec
from mmocc.data.sources import SOURCES, load_source, parse_source
from mmocc.data.streaming import plan_source
from mmocc.data.tasks import OneClassSplit

pytestmark = pytest.mark.usefixtures("ds_cache_dir")

SHAPE = (24, 32)  # height, width of every image


def _image(path: Path, value: int, shape: tuple[int, int] = SHAPE, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full(shape, value, np.uint8)
    Image.fromarray(array if mode == "L" else np.stack([array] * 3, axis=-1)).save(path)
    return path


def _mask(path: Path, pixel: tuple[int, int] | None, shape: tuple[int, int] = SHAPE) -> Path:
    """A mask with one defective pixel (None: all clear)."""
    array = np.zeros(shape, np.uint8)
    if pixel is not None:
        array[pixel] = 255
    return _save(path, array)


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def single(tmp_path: Path) -> Path:
    """MVTec AD as published: 3 train, 2 test good, 2 'crack' and 1 'hole' with one-pixel masks."""
    root = tmp_path / "bottle"
    for i in range(3):
        _image(root / "train" / "good" / f"{i:03d}.png", 10 + i)
    for i in range(2):
        _image(root / "test" / "good" / f"{i:03d}.png", 50 + i)
        _image(root / "test" / "crack" / f"{i:03d}.png", 100 + i)
        _mask(root / "ground_truth" / "crack" / f"{i:03d}_mask.png", (3 + i, 30))
    _image(root / "test" / "hole" / "000.jpg", 200, mode="RGB")
    _mask(root / "ground_truth" / "hole" / "000_mask.png", (23, 0))
    (root / "license.txt").write_text("ignored")
    (root / "test" / "crack" / ".hidden.png").write_bytes(b"ignored")
    return root


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    """Three cameras per part: 'side', 'top' and 'under'; masks only where a camera sees the defect."""
    root = tmp_path / "parts"
    views = ("top", "side", "under")
    for i in range(3):
        for k, view in enumerate(views):
            _image(root / "train" / "good" / f"p{i}" / f"{view}.png", 10 * i + k)
            _image(root / "test" / "good" / f"q{i}" / f"{view}.png", 40 + 10 * i + k)
            _image(root / "test" / "dent" / f"d{i}" / f"{view}.bmp", 90 + 10 * i + k)
        _mask(root / "ground_truth" / "dent" / f"d{i}" / "top_mask.png", (i, i))
    _mask(root / "ground_truth" / "dent" / "d2" / "side_mask.png", (5, 7))
    return root


# ----------------------------------------------------------------------------- single view


def test_single_view_layout_labels_splits_and_masks(single):
    ds = load_mvtec(single, size=8, cache=False)
    assert ds.view_names == ["image"] and ds.views["image"].shape == (8, 1, 8, 8)
    assert ds.ids.tolist() == [
        "train/good/000", "train/good/001", "train/good/002",
        "test/crack/000", "test/crack/001", "test/good/000", "test/good/001", "test/hole/000",
    ]  # fmt: skip
    assert ds.labels.tolist() == ["good"] * 3 + ["crack"] * 2 + ["good", "good", "hole"]
    assert ds.metadata["split"].tolist() == ["train"] * 3 + ["test"] * 5
    masks = ds.masks["image"]
    assert masks.shape == (8, 8, 8) and masks.dtype == np.bool_
    defective = ds.labels != "good"
    assert not masks[~defective].any() and masks[defective].any(axis=(1, 2)).all()
    assert masks[3][3 * 8 // 24, 30 * 8 // 32] and masks[7][7, 0]  # one pixel of 24 x 32 survives at 8 x 8
    paths = ds.mask_paths["image"]
    assert (paths[~defective] == "").all() and paths[7].endswith("ground_truth/hole/000_mask.png")
    assert ds.paths["image"][7].endswith("test/hole/000.jpg")


def test_the_datasets_own_one_class_task(single):
    ds = load_mvtec(single, size=8, cache=False)
    task = mvtec_task(ds)
    assert isinstance(task, OneClassSplit) and task.normal == "good"
    assert task.train.ids.tolist() == ["train/good/000", "train/good/001", "train/good/002"]
    assert task.test.ids.tolist() == ds.ids[3:].tolist()
    assert task.y_test.tolist() == [1, 1, 0, 0, 1]
    np.testing.assert_array_equal(task.test.masks["image"], ds.masks["image"][3:])
    with pytest.raises(ValueError, match="mvtec_task needs the 'split' metadata"):
        mvtec_task(MultiViewDataset(ds.views, labels=ds.labels))


def test_labels_only_without_ground_truth_means_no_masks_and_no_warning(single):
    for folder in sorted((single / "ground_truth").rglob("*"), reverse=True):
        folder.unlink() if folder.is_file() else folder.rmdir()
    (single / "ground_truth").rmdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_mvtec(single, size=8, cache=False)
    assert ds.masks == {} and ds.mask_paths == {} and len(ds) == 8


def test_a_defective_image_without_its_mask_makes_masks_unknown_with_one_warning(single):
    (single / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.warns(
        UserWarning, match=r"1 defective test sample\(s\) have no mask .*test/crack/001"
    ) as caught:
        ds = load_mvtec(single, size=8, cache=False)
    assert len(caught) == 1 and ds.masks == {} and len(ds) == 8


def test_masks_of_another_size_name_the_sample_view_and_sizes(single):
    _mask(single / "ground_truth" / "hole" / "000_mask.png", (1, 1), shape=(24, 30))
    with pytest.raises(
        ValueError,
        match=r"sample test/hole/000, view 'image': .*mask is 30x24 px but its image .*000.jpg is 32x24",
    ):
        load_mvtec(single, size=8, cache=False)


def test_views_option_renames_the_single_view(single):
    ds = load_mvtec(single, views="image:camera", size=8, cache=False)
    assert ds.view_names == ["camera"] and list(ds.masks) == ["camera"]
    with pytest.raises(ValueError, match=r"view\(s\) \['left'\] not in the data; its views are \['image'\]"):
        load_mvtec(single, views=["left"], size=8, cache=False)


# ----------------------------------------------------------------------------- multi-view


def test_multi_view_layout_gives_one_sample_per_folder_and_masks_per_view(multi):
    ds = load_mvtec(multi, size=8, cache=False)
    assert ds.view_names == ["side", "top", "under"] and len(ds) == 9
    assert ds.ids.tolist()[:4] == ["train/good/p0", "train/good/p1", "train/good/p2", "test/dent/d0"]
    assert ds.labels.tolist() == ["good"] * 3 + ["dent"] * 3 + ["good"] * 3
    np.testing.assert_array_equal(ds.views["under"][:, 0, 0, 0], [2, 12, 22, 92, 102, 112, 42, 52, 62])
    assert set(ds.masks) == {"side", "top", "under"}
    dent = ds.labels == "dent"
    assert ds.masks["top"][dent].any(axis=(1, 2)).all() and not ds.masks["top"][~dent].any()
    assert ds.masks["side"].any(axis=(1, 2)).tolist() == [False] * 5 + [True] + [False] * 3
    assert not ds.masks["under"].any()  # no mask file: that camera sees no defect
    assert ds.mask_paths["side"][5].endswith("ground_truth/dent/d2/side_mask.png")
    assert ds.mask_paths["under"].tolist() == [""] * 9
    task = mvtec_task(ds)
    assert len(task.train) == 3 and task.y_test.tolist() == [1, 1, 1, 0, 0, 0]


def test_multi_view_selection_and_renaming(multi):
    ds = load_mvtec(multi, views={"top": "front", "side": "left"}, size=8, cache=False)
    assert ds.view_names == ["front", "left"] and set(ds.masks) == {"front", "left"}
    assert ds.masks["left"][5].any()


def test_a_view_missing_in_one_sample_is_named(multi):
    (multi / "test" / "good" / "q1" / "side.png").unlink()
    with pytest.raises(ValueError, match=r"test/good/q1: views \['top', 'under'\] \(missing \['side'\]"):
        load_mvtec(multi, size=8, cache=False)
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        ds = load_mvtec(multi, size=8, cache=False, on_error="skip")
    assert "test/good/q1" not in ds.ids.tolist() and ds.masks["top"].shape == (8, 8, 8)


def test_a_defective_sample_without_any_mask_makes_masks_unknown(multi):
    for path in (multi / "ground_truth" / "dent" / "d1").iterdir():
        path.unlink()
    with pytest.warns(UserWarning, match="1 defective test sample.*test/dent/d1"):
        assert load_mvtec(multi, size=8, cache=False).masks == {}


# ----------------------------------------------------------------------------- planning and the registry


@pytest.mark.parametrize("layout", ["single", "multi"])
def test_planning_lists_without_decoding_and_chunks_equal_the_load(layout, request, ds_cache_dir):
    root = request.getfixturevalue(layout)
    listing = plan_mvtec(root, size=8, cache_dir=ds_cache_dir)
    assert len(listing) == (8 if layout == "single" else 9) and set(listing.masks) == set(listing.files)
    assert not list(ds_cache_dir.glob("*.bin"))  # nothing decoded yet
    plan = plan_source(f"mvtec:{root}", size=8, cache_dir=ds_cache_dir)
    assert plan.listing is not None and plan.ids.tolist() == listing.ids.tolist()
    loaded = load_source(f"mvtec:{root}", size=8, cache_dir=ds_cache_dir)
    streamed = concat_datasets(list(plan.chunks(2, prefetch=1)))
    assert streamed.ids.tolist() == loaded.ids.tolist() and streamed.labels.tolist() == loaded.labels.tolist()
    assert streamed.metadata["split"].tolist() == loaded.metadata["split"].tolist()
    for view in loaded.view_names:
        np.testing.assert_array_equal(streamed.views[view], loaded.views[view])
        np.testing.assert_array_equal(streamed.masks[view], loaded.masks[view])
        assert streamed.mask_paths[view].tolist() == plan.mask_paths[view].tolist()
    train = plan.subset(plan.listing.metadata["split"] == "train").load()
    assert train.labels.tolist() == ["good"] * 3 and not any(train.masks[v].any() for v in train.view_names)


def test_the_kind_is_registered_once_and_named(single):
    kind = SOURCES["mvtec"]
    assert kind.load is load_mvtec and kind.plan is plan_mvtec and kind.model_views and kind.claims is None
    source = parse_source(f"mvtec:{single}")
    assert source.kind == "mvtec" and source.path == single
    assert parse_source(str(single)).kind == "folder"  # a bare folder stays a folder
    with pytest.raises(ValueError, match="the mvtec source has no option 'sise'"):
        load_source(f"mvtec:{single}", sise=8)


# ----------------------------------------------------------------------------- errors


def test_missing_train_good_is_named(tmp_path):
    _image(tmp_path / "test" / "good" / "0.png", 1)
    with pytest.raises(ValueError, match=r"no train/good folder; an MVTec AD folder holds"):
        load_mvtec(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_mvtec(tmp_path / "absent")
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"train/good: holds no images"):
        load_mvtec(tmp_path)


_LAYOUT_ERRORS = {
    "mask-without-image": (
        "ground_truth/crack/007_mask.png",
        r"007_mask.png: a mask without an image: no test/crack/007",
    ),
    "mask-type-without-test": (
        "ground_truth/scratch/000_mask.png",
        r"masks without images: there is no test/scratch/",
    ),
    "mask-name": ("ground_truth/crack/000.png", r"000.png: not a mask name; masks are named <name>_mask.png"),
    "train-class": ("train/dent/0.png", r"train: holds dent besides good/"),
    "test-stray": ("test/stray.png", r"test: holds images directly \(stray\)"),
    "layout-mix": ("test/crack/x/top.png", r"crack: holds folders \(x\), but train/good holds images"),
    "two-files": ("test/crack/000.bmp", r"crack: two images named '000': 000.bmp, 000.png"),
    "train-mix": ("train/good/s/top.png", r"good: mixes images and folders"),
}


@pytest.mark.parametrize("case", sorted(_LAYOUT_ERRORS))
def test_layout_errors_name_the_culprit(single, case):
    added, message = _LAYOUT_ERRORS[case]
    _image(single / added, 1)
    with pytest.raises(ValueError, match=message):
        plan_mvtec(single)


def test_multi_view_errors_name_the_culprit(multi):
    _mask(multi / "ground_truth" / "dent" / "d0" / "back_mask.png", (0, 0))
    with pytest.raises(
        ValueError, match=r"back_mask.png: a mask without an image: no test/dent/d0/back.<ext>"
    ):
        plan_mvtec(multi)
    (multi / "ground_truth" / "dent" / "d0" / "back_mask.png").unlink()
    _image(multi / "test" / "dent" / "loose.png", 1)
    with pytest.raises(
        ValueError, match=r"dent: holds images \(loose\), but train/good holds sample folders"
    ):
        plan_mvtec(multi)


def test_only_the_mvtec_image_extensions_are_read(single):
    _image(single / "test" / "crack" / "009.gif", 1)
    _image(single / "test" / "crack" / "010.tiff", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 010 has no mask: masks unknown
        ids = plan_mvtec(single).ids.tolist()
    assert "test/crack/010" in ids and "test/crack/009" not in ids
