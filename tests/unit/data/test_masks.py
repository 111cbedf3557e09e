"""Ground-truth masks as data: kept aligned by the dataset, read from manifests, resized keeping defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc.data.dataset import MultiViewDataset, concat_datasets
from mmocc.data.defects import defect_dataset
from mmocc.data.images import decode_mask, resize_mask
from mmocc.data.manifest import load_manifest
from mmocc.data.streaming import plan_source
from mmocc.data.tasks import one_class_split

pytestmark = pytest.mark.usefixtures("ds_cache_dir")


def _dataset(n: int = 6, size: int = 5) -> MultiViewDataset:
    """Two image views and a vector view; masks on 'a' mark pixel (i % size, 0) of sample i."""
    masks = np.zeros((n, size, size), dtype=bool)
    masks[np.arange(n), np.arange(n) % size, 0] = True
    return MultiViewDataset(
        {
            "a": np.arange(n * size * size, dtype=np.uint8).reshape(n, 1, size, size),
            "b": np.zeros((n, 3, size, size), np.uint8),
            "v": np.ones((n, 2), np.float32),
        },
        labels=[i % 2 for i in range(n)],
        masks={"a": masks, "b": None},
        mask_paths={"a": [f"m{i}.png" for i in range(n)]},
    )


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ----------------------------------------------------------------------------- the dataset


def test_masks_are_bool_arrays_at_the_view_resolution():
    ds = _dataset()
    assert list(ds.masks) == ["a"] and ds.masks["a"].shape == (6, 5, 5) and ds.masks["a"].dtype == np.bool_
    assert ds.mask_paths["a"].tolist()[:2] == ["m0.png", "m1.png"]
    assert "masks=['a']" in repr(ds)
    assert "masks" not in repr(MultiViewDataset({"a": np.zeros((2, 1, 3, 3))}))
    assert MultiViewDataset({"a": np.zeros((2, 1, 3, 3))}).masks == {}


def test_bad_masks_name_the_view_and_both_shapes():
    images = {"cam": np.zeros((3, 1, 8, 6), np.uint8), "vec": np.zeros((3, 4))}
    with pytest.raises(
        ValueError, match=r"masks of view 'cam' have shape \(3, 6, 8\).*\(3, 1, 8, 6\).*\(3, 8, 6\)"
    ):
        MultiViewDataset(images, masks={"cam": np.zeros((3, 6, 8), bool)})
    with pytest.raises(ValueError, match=r"masks of view 'cam' have shape \(2, 8, 6\)"):
        MultiViewDataset(images, masks={"cam": np.zeros((2, 8, 6), bool)})
    with pytest.raises(TypeError, match="masks of view 'cam' must be bool.*uint8"):
        MultiViewDataset(images, masks={"cam": np.zeros((3, 8, 6), np.uint8)})
    with pytest.raises(ValueError, match="view 'vec', a vector view"):
        MultiViewDataset(images, masks={"vec": np.zeros((3, 4), bool)})
    with pytest.raises(ValueError, match="masks given for view 'top', which is not among the views"):
        MultiViewDataset(images, masks={"top": np.zeros((3, 8, 6), bool)})
    with pytest.raises(ValueError, match=r"mask paths given for view\(s\) \['cam'\] without masks"):
        MultiViewDataset(images, mask_paths={"cam": ["x"] * 3})
    with pytest.raises(ValueError, match="mask paths of view 'cam' has 2 samples"):
        MultiViewDataset(images, masks={"cam": np.zeros((3, 8, 6), bool)}, mask_paths={"cam": ["x"] * 2})


def test_subsets_and_view_selections_keep_masks_aligned():
    ds = _dataset()
    for part, rows in ((ds.subset([4, 1]), [4, 1]), (ds[ds.labels == 1], [1, 3, 5]), (ds[2:5], [2, 3, 4])):
        np.testing.assert_array_equal(part.masks["a"], ds.masks["a"][rows])
        assert part.mask_paths["a"].tolist() == [f"m{i}.png" for i in rows]
    picked = ds.select_views(["b", "a"])
    assert picked.masks["a"] is ds.masks["a"] and list(picked.masks) == ["a"]
    assert ds.select_views("b").masks == {} and ds.select_views("b").mask_paths == {}


def test_concatenation_keeps_masks_known_in_every_part():
    ds = _dataset()
    joined = concat_datasets([ds[:2], ds[2:]])
    np.testing.assert_array_equal(joined.masks["a"], ds.masks["a"])
    assert joined.mask_paths["a"].tolist() == ds.mask_paths["a"].tolist()
    unknown = MultiViewDataset(
        {name: array[:2] for name, array in ds.views.items()}, labels=[0, 1], ids=["x", "y"]
    )
    mixed = concat_datasets([ds, unknown])
    assert len(mixed) == 8 and mixed.masks == {} and mixed.mask_paths == {}
    no_paths = MultiViewDataset(
        unknown.views, labels=[0, 1], ids=["x", "y"], masks={"a": np.ones((2, 5, 5), bool)}
    )
    partly = concat_datasets([ds, no_paths])
    assert partly.masks["a"][6:].all() and partly.mask_paths == {}


def test_one_class_split_keeps_masks_with_their_samples():
    ds = _dataset(n=12)
    task = one_class_split(ds, normal=0, seed=3)
    np.testing.assert_array_equal(task.train.masks["a"], ds.masks["a"][task.train_index])
    np.testing.assert_array_equal(task.test.masks["a"], ds.masks["a"][task.test_index])
    assert task.test.mask_paths["a"].tolist() == ds.mask_paths["a"][task.test_index].tolist()


def test_painted_defects_become_the_datasets_masks():
    images = np.zeros((4, 1, 16, 16), np.uint8)
    images[:, :, 4:12, 4:12] = 180
    prior = np.zeros((4, 16, 16), bool)
    prior[:, 0, 0] = True  # a known defect outside the object
    normal = MultiViewDataset(
        {"a": images, "b": images.copy(), "c": images.copy()}, masks={"a": prior, "c": prior.copy()}
    )
    painted, batch = defect_dataset(normal, seed=1, view_names=["a", "b"])
    assert set(painted.masks) == {"a", "b", "c"} and painted.mask_paths == {}
    np.testing.assert_array_equal(painted.masks["a"], batch.masks["a"] | prior)
    np.testing.assert_array_equal(painted.masks["b"], batch.masks["b"])
    np.testing.assert_array_equal(painted.masks["c"], prior)  # not painted: the input's masks
    assert not (batch.masks["a"][:, 0, 0]).any()  # the batch's own masks are unchanged
    fresh, fresh_batch = defect_dataset(MultiViewDataset({"a": images}), seed=0)
    np.testing.assert_array_equal(fresh.masks["a"], fresh_batch.masks["a"])


# ----------------------------------------------------------------------------- resizing


def _area_max(mask: np.ndarray, size: int) -> np.ndarray:
    """The definition, cell by cell: True where any source pixel overlapping the cell is."""
    height, width = mask.shape
    out = np.zeros((size, size), bool)
    for i in range(size):
        for j in range(size):
            rows = slice(i * height // size, -(-(i + 1) * height // size))
            cols = slice(j * width // size, -(-(j + 1) * width // size))
            out[i, j] = mask[rows, cols].any()
    return out


@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (5, 3), (64, 20)])
@pytest.mark.parametrize("size", [1, 4, 7, 16])
def test_resize_is_the_maximum_over_each_cells_area(shape, size):
    rng = np.random.default_rng(size)
    mask = rng.random(shape) < 0.02
    np.testing.assert_array_equal(resize_mask(mask, size), _area_max(mask, size))


def test_a_one_pixel_defect_survives_any_shrinking():
    for row, col in [(0, 0), (99, 99), (37, 81), (50, 12)]:
        mask = np.zeros((100, 120), bool)
        mask[row, col] = True
        for size in (3, 8, 32, 99):
            small = resize_mask(mask, size)
            assert 1 <= small.sum() <= 4
            assert small[row * size // 100, col * size // 120]
    assert not resize_mask(np.zeros((50, 50), bool), 7).any()


def test_mask_images_nonzero_in_any_channel_are_defects(tmp_path):
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[2, 3, 1] = 1  # green only, and faint
    grey16 = np.zeros((10, 10), np.uint16)
    grey16[7, 7] = 1
    assert np.argwhere(decode_mask(_save(tmp_path / "rgb.png", rgb), 10)[0]).tolist() == [[2, 3]]
    assert np.argwhere(decode_mask(_save(tmp_path / "deep.png", grey16), 10)[0]).tolist() == [[7, 7]]
    bilevel = tmp_path / "one.png"
    Image.fromarray(np.eye(4, dtype=bool)).save(bilevel)
    assert decode_mask(bilevel, 4)[0].tolist() == np.eye(4, dtype=np.uint8).tolist()


# ----------------------------------------------------------------------------- the manifest


@pytest.fixture
def inspection(tmp_path: Path) -> Path:
    """A manifest of 5 parts seen by cameras 'top' and 'side', 40 x 30 px, masks for 'top' only."""
    rows = ["sample_id,label,top,side,mask_top"]
    for i in range(5):
        image = np.full((30, 40), 60 + 30 * i, np.uint8)
        _save(tmp_path / "img" / f"{i}_top.png", image)
        _save(tmp_path / "img" / f"{i}_side.png", 255 - image)
        mask = ""
        if i >= 3:
            defect = np.zeros((30, 40), np.uint8)
            defect[5 * i, 3 * i] = 255  # one pixel
            _save(tmp_path / "masks" / f"{i}.png", defect)
            mask = f"masks/{i}.png"
        rows.append(f"p{i},{'good' if i < 3 else 'dent'},img/{i}_top.png,img/{i}_side.png,{mask}")
    path = tmp_path / "parts.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_manifest_mask_columns_give_masks_and_an_empty_cell_no_defect(inspection):
    ds = load_manifest(inspection, size=8, cache=False)
    assert ds.view_names == ["top", "side"] and list(ds.masks) == ["top"]
    assert ds.metadata == {}  # the mask column is no view and no metadata
    masks = ds.masks["top"]
    assert masks.shape == (5, 8, 8) and masks.dtype == np.bool_
    assert not masks[:3].any()  # empty cells: no defect
    for i in (3, 4):  # the one-pixel defect survives 40 x 30 -> 8 x 8, where it was
        assert masks[i].sum() >= 1 and masks[i][5 * i * 8 // 30, 3 * i * 8 // 40]
    paths = ds.mask_paths["top"].tolist()
    assert paths[:3] == ["", "", ""] and paths[3].endswith("masks/3.png") and Path(paths[3]).is_file()


def test_manifest_masks_follow_renamed_and_selected_views(inspection):
    ds = load_manifest(inspection, views="top:front", size=8, cache=False)
    assert ds.view_names == ["front"] and list(ds.masks) == ["front"]
    side = load_manifest(inspection, views=["side"], size=8, cache=False)
    assert side.masks == {} and sorted(side.metadata) == ["top"]  # mask_top is not metadata


def test_manifest_masks_survive_a_one_class_split(inspection):
    ds = load_manifest(inspection, size=8, cache=False)
    task = one_class_split(ds, normal="good", train_mask=np.array([True, True, False, False, False]))
    np.testing.assert_array_equal(task.test.masks["top"], ds.masks["top"][[2, 3, 4]])
    assert task.test.masks["top"][1:].any(axis=(1, 2)).all()


def test_manifest_mask_of_another_size_names_the_row_view_and_sizes(inspection):
    _save(inspection.parent / "masks" / "3.png", np.zeros((20, 40), np.uint8))
    with pytest.raises(
        ValueError,
        match=r"parts.csv line 5 \(sample_id 'p3'\), view 'top': .*mask is 40x20 px .* is 40x30 px",
    ):
        load_manifest(inspection, size=8, cache=False)
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        kept = load_manifest(inspection, size=8, cache=False, on_error="skip")
    assert kept.ids.tolist() == ["p0", "p1", "p2", "p4"] and kept.masks["top"].shape == (4, 8, 8)


def test_manifest_missing_mask_file_names_it(inspection):
    (inspection.parent / "masks" / "3.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"sample_id 'p3'\), view 'top': mask file not found: .*3.png"
    ):
        load_manifest(inspection, size=8, cache=False)


def test_manifest_mask_column_without_its_view_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text("sample_id,top,mask_side\na,x.png,\n")
    with pytest.raises(ValueError, match="column 'mask_side' holds masks .* no view column 'side'"):
        load_manifest(tmp_path / "m.csv")


def test_streamed_masks_equal_the_loaded_ones_and_are_cached(inspection, ds_cache_dir):
    loaded = load_manifest(inspection, size=8, cache_dir=ds_cache_dir)
    plan = plan_source(str(inspection), size=8, cache_dir=ds_cache_dir)
    assert plan.mask_paths["top"].tolist() == loaded.mask_paths["top"].tolist()
    chunks = list(plan.chunks(3))
    assert [len(chunk) for chunk in chunks] == [3, 2]
    np.testing.assert_array_equal(np.concatenate([c.masks["top"] for c in chunks]), loaded.masks["top"])
    again = plan.subset(np.array([3, 0])).load()
    np.testing.assert_array_equal(again.masks["top"], loaded.masks["top"][[3, 0]])
    assert len(list(ds_cache_dir.glob("images-*.bin"))) >= 2  # image and mask entries
    moved = np.zeros((30, 40), np.uint8)
    moved[0, 0] = 255
    _save(inspection.parent / "masks" / "3.png", moved)  # a changed mask is decoded again
    assert load_manifest(inspection, size=8, cache_dir=ds_cache_dir).masks["top"][3, 0, 0]
