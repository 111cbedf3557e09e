"""Synthetic local defects: one defect per sample, in one image view, with exact masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.defects import DEFECT_KINDS, DefectBatch, defect_dataset, paint_defects
from mmocc.datasets import load_turntable, make_synthetic

COIL = Path("/work/shared/data/coil-20-proc")
LOW, HIGH = 0.03, 0.08


@pytest.fixture(scope="module")
def synthetic() -> MultiViewDataset:
    return make_synthetic(n_per_class=10, n_classes=2, size=32, seed=0)


def _object_views(n: int = 12, size: int = 32, channels: int = 3, dtype: str = "uint8") -> np.ndarray:
    """Discs of random radius and shade on a slightly noisy, dark background; floats in [0, 1]."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.clip(0.08 + 0.01 * rng.standard_normal((n, channels, size, size)), 0, 1)
    for i in range(n):
        radius = rng.uniform(0.25, 0.4) * size
        disc = np.hypot(yy - size / 2 + rng.uniform(-2, 2), xx - size / 2) < radius
        shade = rng.uniform(0.5, 0.9, size=channels)[:, None] * (0.8 + 0.2 * np.cos(xx[disc] / 3.0))
        images[i][:, disc] = shade
    if dtype == "uint8":
        return np.rint(images * 255).astype(np.uint8)
    return images.astype(dtype)


def _foreground(images: np.ndarray) -> np.ndarray:
    """Pixels clearly unlike the border median, computed here independently of the module."""
    x = images.astype(np.float64) / (255.0 if images.dtype == np.uint8 else 1.0)
    border = np.concatenate([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], axis=2)
    background = np.median(border, axis=2)[:, :, None, None]
    return np.abs(x - background).max(axis=1) > 0.06


def _check_batch(views: dict[str, np.ndarray], batch: DefectBatch, erase_floor: float = 0.02) -> None:
    """The invariants every painted batch satisfies."""
    n = len(next(iter(views.values())))
    assert len(batch) == n and batch.defect_view.shape == (n,) and batch.kind.shape == (n,)
    assert set(batch.kind.tolist()) <= set(DEFECT_KINDS)
    assert list(batch.views) == list(views)
    changed_views = np.zeros(n, dtype=int)
    for name, original in views.items():
        painted = batch.views[name]
        assert painted.shape == original.shape and painted.dtype == original.dtype
        assert painted is not original
        if name not in batch.view_names:
            np.testing.assert_array_equal(painted, original)
            continue
        image_axes = original.reshape(n, -1, *original.shape[-2:])
        changed = (painted.reshape(image_axes.shape) != image_axes).any(axis=1)
        mask = batch.masks[name]
        assert mask.dtype == np.bool_ and mask.shape == changed.shape
        np.testing.assert_array_equal(mask, changed)  # the mask is exactly the changed pixels
        here = batch.defect_view_names == name
        assert not mask[~here].any()
        assert mask[here].any(axis=(1, 2)).all()
        changed_views += changed.any(axis=(1, 2))
        # On the object (where there is one: this check does not cover the spill onto a tiny object).
        on_object = (mask & _foreground(image_axes)).sum(axis=(1, 2))
        np.testing.assert_array_equal(on_object[here], mask[here].sum(axis=(1, 2)))
    np.testing.assert_array_equal(changed_views, 1)  # exactly one view changed per sample
    area = np.stack([batch.masks[name] for name in batch.view_names]).any(axis=0).mean(axis=(1, 2))
    erase = batch.kind == "erase"
    assert (area <= HIGH + 1e-9).all()
    assert (area[~erase] >= LOW - 0.003).all(), area[~erase].min()  # a pixel may happen to keep its value
    assert (area[erase] >= erase_floor).all(), area[erase].min()


def test_synthetic_pairs(synthetic: MultiViewDataset) -> None:
    before = {name: array.copy() for name, array in synthetic.views.items()}
    batch = paint_defects(synthetic, seed=0)
    _check_batch(synthetic.views, batch)
    assert batch.view_names == ("dorsal", "lateral")
    for name, array in synthetic.views.items():  # the input is not modified
        np.testing.assert_array_equal(array, before[name])
    assert set(batch.defect_view.tolist()) == {0, 1}


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_each_kind(synthetic: MultiViewDataset, kind: str) -> None:
    batch = paint_defects(synthetic.views, kinds=kind, seed=1)
    assert set(batch.kind.tolist()) == {kind}
    _check_batch(synthetic.views, batch)


def test_blob_and_scratch_contrast(synthetic: MultiViewDataset) -> None:
    batch = paint_defects(synthetic.views, kinds=("blob", "scratch"), seed=2)
    for i in range(len(batch)):
        name = batch.defect_view_names[i]
        mask = batch.masks[name][i]
        before = synthetic.views[name][i][:, mask].astype(float)
        after = batch.views[name][i][:, mask].astype(float)
        assert np.abs(after.mean(axis=1) - before.mean(axis=1)).max() > 40  # visibly different on average


def test_erase_paints_background(synthetic: MultiViewDataset) -> None:
    batch = paint_defects(synthetic.views, kinds="erase", seed=3)
    for i in range(len(batch)):
        name = batch.defect_view_names[i]
        image = batch.views[name][i].astype(float)
        border = np.median(np.concatenate([image[:, 0], image[:, -1]], axis=1), axis=1)
        erased = image[:, batch.masks[name][i]]
        assert np.abs(np.median(erased, axis=1) - border).max() <= 6


@pytest.mark.parametrize(("channels", "dtype"), [(1, "uint8"), (3, "uint8"), (1, "float32"), (3, "float64")])
def test_channels_and_dtypes(channels: int, dtype: str) -> None:
    images = _object_views(channels=channels, dtype=dtype)
    views = {"a": images, "b": images[::-1].copy(), "vec": np.ones((len(images), 4), np.float32)}
    batch = paint_defects(views, seed=4)
    _check_batch(views, batch)
    assert batch.view_names == ("a", "b")
    if dtype != "uint8":
        for name in batch.view_names:
            assert 0.0 <= batch.views[name].min() and batch.views[name].max() <= 1.0


def test_three_dimensional_views_keep_their_shape() -> None:
    images = _object_views(channels=1)[:, 0]
    batch = paint_defects({"gray": images}, seed=5)
    assert batch.views["gray"].shape == images.shape
    assert batch.masks["gray"].shape == images.shape
    np.testing.assert_array_equal(batch.masks["gray"], batch.views["gray"] != images)


def test_deterministic_by_seed(synthetic: MultiViewDataset) -> None:
    first, again = paint_defects(synthetic, seed=11), paint_defects(synthetic, seed=11)
    other = paint_defects(synthetic, seed=12)
    from_generator = paint_defects(synthetic, seed=np.random.default_rng(11))
    for batch in (again, from_generator):
        np.testing.assert_array_equal(batch.defect_view, first.defect_view)
        np.testing.assert_array_equal(batch.kind, first.kind)
        for name in first.views:
            np.testing.assert_array_equal(batch.views[name], first.views[name])
    assert any(not np.array_equal(other.views[name], first.views[name]) for name in first.views)


def test_view_names_and_area(synthetic: MultiViewDataset) -> None:
    batch = paint_defects(synthetic, view_names=["lateral"], area=(0.05, 0.05), seed=6)
    assert batch.view_names == ("lateral",) and (batch.defect_view == 0).all()
    np.testing.assert_array_equal(batch.views["dorsal"], synthetic.views["dorsal"])
    area = batch.masks["lateral"].mean(axis=(1, 2))
    assert (np.abs(area[batch.kind != "erase"] - 0.05) < 0.004).all()


def test_small_and_missing_objects() -> None:
    images = np.zeros((8, 1, 32, 32), np.uint8)
    images[:4, :, 14:18, 14:18] = 200  # 1.6% of the image: too small to erase, blobs and scratches spill
    batch = paint_defects({"a": images}, kinds=("erase", "scratch"), seed=0)
    assert set(batch.kind[batch.kind != "scratch"].tolist()) == {"blob"}  # every erase became a blob
    area = batch.masks["a"].mean(axis=(1, 2))
    assert (area >= LOW - 0.003).all() and (area <= HIGH).all()
    blank = paint_defects({"a": images[4:]}, seed=1)  # no object at all: painted anyway
    assert blank.masks["a"].any(axis=(1, 2)).all()


def test_empty_input() -> None:
    batch = paint_defects({"a": np.zeros((0, 3, 16, 16), np.uint8)})
    assert len(batch) == 0 and batch.masks["a"].shape == (0, 16, 16)


def test_defect_dataset(synthetic: MultiViewDataset) -> None:
    painted, batch = defect_dataset(synthetic, seed=8)
    assert len(painted) == len(synthetic)
    np.testing.assert_array_equal(painted.labels, synthetic.labels)
    np.testing.assert_array_equal(painted.groups, synthetic.groups)
    assert [f"{i}#defect" for i in synthetic.ids] == painted.ids.tolist()
    np.testing.assert_array_equal(painted.metadata["yaw"], synthetic.metadata["yaw"])
    np.testing.assert_array_equal(painted.metadata["defect_view"], batch.defect_view_names)
    np.testing.assert_array_equal(painted.metadata["defect_kind"], batch.kind)
    for name in synthetic.view_names:
        np.testing.assert_array_equal(painted.views[name], batch.views[name])
    assert len(np.unique(np.concatenate([synthetic.ids, painted.ids]))) == 2 * len(synthetic)
    suffixed, _ = defect_dataset(synthetic, seed=8, suffix="-bad")
    assert suffixed.ids[0] == f"{synthetic.ids[0]}-bad"


def test_errors() -> None:
    images = _object_views(n=3)
    vectors = np.ones((3, 5))
    with pytest.raises(ValueError, match=r"no image view.*'size' \(3, 5\)"):
        paint_defects({"size": vectors})
    with pytest.raises(ValueError, match=r"unknown defect kind 'blobb'; did you mean 'blob'\?"):
        paint_defects({"a": images}, kinds=("blobb", "erase"))
    with pytest.raises(ValueError, match="at least one defect kind"):
        paint_defects({"a": images}, kinds=())
    for bad in [(0.1, 0.05), (0.0, 0.1), (0.1, 0.9), (-0.1, 0.1), (0.1,), "ab", None]:
        with pytest.raises(ValueError, match="area"):
            paint_defects({"a": images}, area=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'size' is a vector view"):
        paint_defects({"a": images, "size": vectors}, view_names=["size"])
    with pytest.raises(ValueError, match=r"'aa' is not among the views; did you mean 'a'\?"):
        paint_defects({"a": images}, view_names=["aa"])
    with pytest.raises(ValueError, match="max_object_share"):
        paint_defects({"a": images}, max_object_share=0.0)
    with pytest.raises(TypeError, match="'mask'.*bool"):
        paint_defects({"mask": images > 100})
    with pytest.raises(ValueError, match="'a'.*channels-last"):
        paint_defects({"a": np.moveaxis(images, 1, 3)})
    with pytest.raises(ValueError, match="different numbers of samples"):
        paint_defects({"a": images, "b": images[:2]})
    nan = images.astype(np.float32) / 255
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="'a'.*NaN"):
        paint_defects({"a": nan})


@pytest.mark.skipif(not COIL.is_dir(), reason=f"COIL-20 not found at {COIL}")
def test_coil_pairs() -> None:
    dataset = load_turntable(COIL, size=32)
    pairs = dataset[np.random.default_rng(0).choice(len(dataset), size=20, replace=False)]
    painted, batch = defect_dataset(pairs, seed=9)
    _check_batch(pairs.views, batch, erase_floor=LOW - 0.003)
    assert len(set(batch.kind.tolist())) == 3
