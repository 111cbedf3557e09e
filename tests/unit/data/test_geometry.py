"""The way back from the loaded square: map_to_source under stretch, pad and crop, and read_mask."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mmocc.data.images import RESIZE_MODES, fit_mask, map_to_source, read_mask, square_geometry

# (height, width) of non-square sources, wide and tall, with sides that do not divide the square
SHAPES = [(12, 20), (20, 12), (37, 53), (61, 29)]
SIZES = [6, 16, 23]


def cell_rounding(shape: tuple[int, int], size: int, resize: str) -> tuple[int, int]:
    """Largest distance in source pixels, per axis, from a defect to a positive pixel of a mask mapped back.

    Less than 1.5 cells plus half a pixel (see ``map_to_source``), a cell spanning ``H / h`` rows and
    ``W / w`` columns.
    """
    (scaled_h, scaled_w), _ = square_geometry(shape[1], shape[0], size, resize)
    return (
        int(np.ceil(1.5 * shape[0] / scaled_h + 0.5)) - 1,
        int(np.ceil(1.5 * shape[1] / scaled_w + 0.5)) - 1,
    )


@pytest.mark.parametrize("resize", RESIZE_MODES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", SIZES)
def test_a_fitted_mask_maps_back_onto_its_defect_within_the_stated_rounding(resize, shape, size):
    rng = np.random.default_rng(sum(shape) * size)
    for _ in range(25):
        defect = np.zeros(shape, dtype=bool)
        top, left = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        defect[top : top + rng.integers(1, 5), left : left + rng.integers(1, 5)] = True
        back = map_to_source(fit_mask(defect, size, resize).astype(np.float32), shape, resize)
        known = np.isfinite(back)
        positive = known & (np.nan_to_num(back) > 0)
        assert not (defect & known & ~positive).any()  # every defect pixel the square shows is found
        rows, cols = cell_rounding(shape, size, resize)
        near = ndimage.binary_dilation(defect, np.ones((2 * rows + 1, 2 * cols + 1), dtype=bool))
        assert not (positive & ~near).any()  # and nothing further than the rounding allows
        assert np.nanmax(back) <= 1.0 and np.nanmin(back) >= 0.0


@pytest.mark.parametrize("shape", SHAPES)
def test_stretch_and_pad_know_every_pixel_and_crop_cuts_a_band(shape):
    size = 16
    for resize in ("stretch", "pad"):
        assert np.isfinite(map_to_source(np.ones((size, size)), shape, resize)).all()
    back = map_to_source(np.ones((size, size)), shape, "crop")
    known = np.isfinite(back)
    long_axis = int(np.argmax(shape))
    assert known.any(axis=long_axis).all()  # the short side is kept whole
    lost = ~known.any(axis=1 - long_axis)  # whole rows (tall image) or whole columns (wide image)
    # the crop keeps the centre square: the short side's worth of pixels, give or take the rounding
    assert abs(int((~lost).sum()) - min(shape)) <= 1
    assert lost[0] and lost[-1] and not lost[len(lost) // 2]
    np.testing.assert_array_equal(back[known], 1.0)


def test_pad_cuts_the_padding_away_before_resizing():
    shape, size = (12, 20), 16  # scaled to 10 x 16 rows 3..12 of the square
    (scaled_h, _), (top, left) = square_geometry(20, 12, size, "pad")
    assert (scaled_h, top, left) == (10, 3, 0)
    square = np.full((size, size), 1000.0)  # whatever a model says about the padding...
    square[top : top + scaled_h] = np.linspace(0.0, 1.0, size)  # ...a ramp across the image part
    back = map_to_source(square, shape, "pad")
    assert back.max() <= 1.0  # never leaks into the image
    np.testing.assert_allclose(back, np.broadcast_to(back[0], shape))  # rows alike, as the ramp is


def test_stretch_is_a_bilinear_resize_with_pixel_centres_aligned():
    size, shape = 8, (12, 20)
    centres = np.arange(size) + 0.5
    square = np.add.outer(2.0 * centres, 3.0 * centres)  # linear in the cell centres
    back = map_to_source(square, shape, "stretch")
    rows = (np.arange(shape[0]) + 0.5) * size / shape[0]
    cols = (np.arange(shape[1]) + 0.5) * size / shape[1]
    expected = np.add.outer(2.0 * np.clip(rows, 0.5, size - 0.5), 3.0 * np.clip(cols, 0.5, size - 0.5))
    np.testing.assert_allclose(back, expected)  # exact inside, edges held at the outer cell centres


def test_a_one_pixel_defect_is_found_at_its_place():
    """A map peaking where a one-pixel defect lands peaks, mapped back, within half a cell of that pixel.

    A bilinear interpolant peaks at a cell centre, so the mapped-back peak is the source pixel nearest the
    centre of the cell the defect fell into: at most half a cell plus half a pixel away per axis.
    """
    shape, size = (37, 53), 16
    for resize in RESIZE_MODES:
        (scaled_h, scaled_w), (top, left) = square_geometry(shape[1], shape[0], size, resize)
        for defect in [(21, 40), (0, 26), (36, 52), (18, 0)]:
            # where the defect pixel's centre lands in the square, in cell-index coordinates
            y = (defect[0] + 0.5) * scaled_h / shape[0] + top - 0.5
            x = (defect[1] + 0.5) * scaled_w / shape[1] + left - 0.5
            if not (-0.5 <= y < size - 0.5 and -0.5 <= x < size - 0.5):
                continue  # cropped away
            cells = np.arange(size)
            square = np.exp(-((cells[:, None] - y) ** 2 + (cells[None, :] - x) ** 2) / 2.0)
            back = map_to_source(square, shape, resize)
            peak = np.unravel_index(np.nanargmax(back), shape)
            assert abs(peak[0] - defect[0]) <= 0.5 * shape[0] / scaled_h + 0.5, (resize, defect, peak)
            assert abs(peak[1] - defect[1]) <= 0.5 * shape[1] / scaled_w + 0.5, (resize, defect, peak)


def test_leading_axes_dtypes_and_errors():
    maps = np.random.default_rng(0).random((3, 2, 16, 16)).astype(np.float32)
    back = map_to_source(maps, (12, 20), "pad")
    assert back.shape == (3, 2, 12, 20) and back.dtype == np.float32
    np.testing.assert_array_equal(back[1, 0], map_to_source(maps[1, 0], (12, 20), "pad"))
    assert map_to_source(np.zeros((4, 4), np.uint8), (3, 5)).dtype == np.float32
    assert map_to_source(np.zeros((4, 4)), (3, 5)).dtype == np.float64
    with pytest.raises(ValueError, match="size, size"):
        map_to_source(np.zeros((4, 5)), (3, 5))
    with pytest.raises(ValueError, match="resize must be one of"):
        map_to_source(np.zeros((4, 4)), (3, 5), "squash")


def test_read_mask_keeps_the_full_resolution_and_any_channel(tmp_path: Path):
    grey = np.zeros((12, 20), np.uint8)
    grey[3, 17] = 1
    Image.fromarray(grey).save(tmp_path / "grey.png")
    colour = np.zeros((12, 20, 3), np.uint8)
    colour[5, 2, 2] = 200
    Image.fromarray(colour).save(tmp_path / "colour.png")
    assert np.argwhere(read_mask(tmp_path / "grey.png")).tolist() == [[3, 17]]
    mask = read_mask(tmp_path / "colour.png")
    assert mask.dtype == bool and mask.shape == (12, 20) and np.argwhere(mask).tolist() == [[5, 2]]
    with pytest.raises(FileNotFoundError):
        read_mask(tmp_path / "missing.png")
