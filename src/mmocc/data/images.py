"""Decoding image files into uint8 arrays: Pillow, threads and the disk cache.

Every file goes through :func:`decode_image`: open with Pillow (its
decompression-bomb guard stays on), let JPEG decode at a reduced scale when
that still leaves at least ``size`` pixels per side, turn it upright as its
EXIF orientation says (as every viewer shows it), convert to ``mode``
(16-bit images are scaled to 8 bits by their range, float images read on
[0, 1]; values outside those ranges are refused, never clipped), bring it to
``size`` x ``size`` with :data:`RESAMPLE` (Lanczos, antialiased) as the
``resize`` mode says (:data:`RESIZE_MODES`, :func:`square_geometry`), and
return ``(C, size, size)`` uint8:

- ``"stretch"`` (the default): scale each side to ``size``; the aspect ratio
  is not kept;
- ``"pad"``: keep the aspect ratio, scale the long side to ``size``, centre
  the image and fill the rest with zeros (black; False in masks). Zeros,
  not the image's repeated edge pixels: a defect at the border (on
  Magnetic-tile 38% of the defect regions touch the image border, in 58%
  of the defective images) would be copied across the padding, where its
  mask, which holds only what the image shows, says there is no defect.
  The price is a sharp edge where the image ends, the same in every
  image of one shape;
- ``"crop"``: keep the aspect ratio, scale the short side to ``size`` and
  keep the centre square; the ends of the long side are lost.

:func:`decode_files` runs it over many files in a thread pool (Pillow releases
the GIL while decoding and resizing; each task decodes a run of files) and
caches the stacked result on disk (see :mod:`mmocc.data.cache`). A load with
any missing or unreadable file is never cached. :func:`decode_samples`
decodes the view files of some samples (one chunk of an
:class:`mmocc.data.listing.ImageListing`), and their ground-truth masks,
dropping or refusing samples with a bad file.

Masks take the same path with :data:`MASK_MODE`: :func:`decode_mask` reads
a mask image (nonzero = defect), checks that it has its image's size and
shrinks or enlarges it with :func:`resize_mask`, which keeps every defect
(a cell is defective if any source pixel it overlaps is), with the
geometry of its image (:func:`fit_mask`): a defect pixel lands where its
image pixel lands, and padding is defect-free. The logger
``mmocc.data.images`` reports, at DEBUG level, whether a load was decoded
or served from the cache.

The way back: :func:`map_to_source` brings a map made at the loaded
resolution back to its source image's size under each ``resize`` mode
(NaN where ``"crop"`` cut the image away), and :func:`read_mask` reads a
mask at full resolution, so that maps can be compared with the original
masks.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
from PIL import ExifTags, Image, ImageOps

from mmocc.data import cache as _cache
from mmocc.utils.text import did_you_mean

logger = logging.getLogger(__name__)

#: Resampling filter used to resize every image (antialiased Lanczos).
RESAMPLE = Image.Resampling.LANCZOS
#: Number of channels of each supported mode.
MODES = {"RGB": 3, "L": 1}
#: The mode that picks ``"L"`` or ``"RGB"`` from the files (see :func:`resolve_mode`).
AUTO_MODE = "auto"
#: Pillow modes that hold one grey channel (with or without alpha).
GREY_PILLOW_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
#: File extensions the folder and turntable sources treat as images.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm"}
)
#: How an image is brought to ``size`` x ``size``; see the module docstring.
RESIZE_MODES = ("stretch", "pad", "crop")
#: The resize mode of every source unless told otherwise: what they did before the option existed.
DEFAULT_RESIZE = "stretch"
#: The decoding "mode" of ground-truth masks: one channel of 0 (normal) or 1 (defect).
MASK_MODE = "mask"
#: Bump when decoding or the cache entry layout changes, so that old entries are not reused
#: (2: entries carry a checksum; 3: EXIF orientation applied, 32-bit and float images scaled).
CACHE_FORMAT_VERSION = 3

#: Pillow modes deeper than 8 bits per channel, brought to 8 bits by their range (see :func:`decode_image`).
_DEEP_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_UINT16_MAX = 65535
#: EXIF orientations that turn the image by 90 degrees (with or without a mirror).
_TURNING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_CHANNELS = {**MODES, MASK_MODE: 1}
#: How masks are resized, as the cache key records it.
_MASK_RESAMPLE = "area-max"
#: Files decoded per thread-pool task: one hand-off per file costs more than a small image's decode.
_FILES_PER_TASK = 64


def check_image_options(
    size: int, mode: str, on_error: str, n_jobs: int | None, resize: str = DEFAULT_RESIZE
) -> int:
    """Validate the options shared by the image sources.

    Parameters
    ----------
    size : int
        Output side length in pixels, at least 1.
    mode : {"RGB", "L", "auto"}
        Output colour mode.
    on_error : {"raise", "skip"}
        What to do with a bad sample.
    n_jobs : int or None
        Decoding threads, at least 1; None means ``os.cpu_count()``.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images are brought to a square (see the module docstring).

    Returns
    -------
    int
        The number of decoding threads to use.

    Raises
    ------
    ValueError
        For any invalid option, naming it (an unknown ``resize`` with the
        closest valid one).
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if mode not in MODES and mode != AUTO_MODE:
        raise ValueError(f"mode must be one of {[*sorted(MODES), AUTO_MODE]}, got {mode!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(
            f"resize must be one of {', '.join(map(repr, RESIZE_MODES))}, got {resize!r}"
            f"{did_you_mean(resize, RESIZE_MODES)}"
        )
    if n_jobs is None:
        return os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    return int(n_jobs)


def stat_image_file(path: str | os.PathLike[str]) -> os.stat_result:
    """Return ``os.stat(path)``, refusing what is not a regular file before Pillow opens it.

    Opening a named pipe blocks until something writes to it, and a device
    may never end, so only regular files are decoded.

    Parameters
    ----------
    path : path-like
        The image file.

    Returns
    -------
    os.stat_result
        Its status.

    Raises
    ------
    OSError
        If ``path`` is missing (``FileNotFoundError``) or not a regular file.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    return info


def _key_stat(path: str | os.PathLike[str], parents: dict[str, str]) -> _cache.FileStat:
    """Return a regular file's resolved path and status, for its cache key.

    One ``lstat`` per file: it is the file's status unless the file is a
    symbolic link. Each folder is resolved once (``parents`` caches it), not
    once per file; a link is resolved on its own.
    """
    text = os.fspath(path)
    info = os.lstat(text)
    if stat.S_ISLNK(info.st_mode):
        return _cache.file_stat(str(Path(text).resolve()), stat_image_file(text))
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", text)
    folder, name = os.path.split(os.path.abspath(text))
    if folder not in parents:
        parents[folder] = str(Path(folder).resolve())
    return _cache.file_stat(os.path.join(parents[folder], name), info)


def _key_stats(
    paths: Sequence[str | os.PathLike[str]], images_of: Sequence[str | os.PathLike[str]] | None
) -> tuple[list[_cache.FileStat], dict[int, BaseException]]:
    """Return the cache-key stats of the files (and of each mask's image), and the error of each bad one."""
    errors: dict[int, BaseException] = {}
    stats = []
    parents: dict[str, str] = {}
    for i, path in enumerate(paths):
        try:
            stats.append(_key_stat(path, parents))
            if images_of is not None:
                stats.append(_key_stat(images_of[i], parents))
        except OSError as exc:
            errors[i] = exc
    return stats, errors


def square_geometry(
    width: int, height: int, size: int, resize: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return how an image of ``width`` x ``height`` pixels is brought to ``size`` x ``size``.

    The image is first scaled to ``(height, width)`` = ``scaled``, then
    placed in the square with its top-left corner at ``corner`` (row,
    column): a positive offset is padding before it, a negative one the
    rows or columns cropped away. Images and their masks share this, so
    that a mask pixel lands where its image pixel lands.

    Parameters
    ----------
    width, height : int
        The source size in pixels.
    size : int
        Output side length in pixels.
    resize : {"stretch", "pad", "crop"}
        See the module docstring.

    Returns
    -------
    scaled : tuple of int
        ``(height, width)`` of the scaled image: ``(size, size)`` for
        ``"stretch"``; the long side ``size`` for ``"pad"``, the short side
        ``size`` for ``"crop"`` (each side at least 1).
    corner : tuple of int
        ``(row, column)`` of the scaled image's top-left pixel in the
        square: ``(0, 0)`` for ``"stretch"``, centred otherwise.

    Examples
    --------
    >>> square_geometry(200, 100, 64, "pad"), square_geometry(200, 100, 64, "crop")
    (((32, 64), (16, 0)), ((64, 128), (0, -32)))
    """
    if resize == "stretch":
        return (size, size), (0, 0)
    scale = size / (max(width, height) if resize == "pad" else min(width, height))
    scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
    return scaled, ((size - scaled[0]) // 2, (size - scaled[1]) // 2)


def place(array: np.ndarray, corner: tuple[int, int], size: int) -> np.ndarray:
    """Put a scaled ``(..., h, w)`` array into a ``size`` x ``size`` square at ``corner``, padding with zeros.

    Parameters
    ----------
    array : numpy.ndarray of shape (..., h, w)
        The scaled image or mask (see :func:`square_geometry`).
    corner : tuple of int
        Where its top-left pixel lands: positive offsets pad, negative ones crop.
    size : int
        Output side length in pixels.

    Returns
    -------
    numpy.ndarray of shape (..., size, size)
        The square.
    """
    top, left = (max(0, -offset) for offset in corner)
    array = array[..., top : top + size, left : left + size]
    before = [max(0, offset) for offset in corner]
    widths = [(b, size - b - n) for b, n in zip(before, array.shape[-2:], strict=True)]
    return np.pad(array, [(0, 0)] * (array.ndim - 2) + widths)


def _eight_bit(image: Image.Image) -> Image.Image:
    """Return ``image`` with 8-bit channels: deeper values scaled by their range, never clipped.

    16-bit images (and 32-bit integer ones holding 0-65535) keep their top
    8 bits; float images are read on [0, 1]. Other values cannot be put on
    0-255 without guessing their range, so they are refused.
    """
    if image.mode not in _DEEP_MODES:
        return image
    values = np.asarray(image)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode == "F":
        if not 0.0 <= low <= high <= 1.0:  # NaN fails too
            raise ValueError(
                f"a float image with values in [{low:g}, {high:g}]; float images are "
                "read on [0, 1] (scaled to 0-255): save it as 8 or 16 bits, or scale it to [0, 1]"
            )
        return Image.fromarray(np.round(values * 255.0).astype(np.uint8))
    if not 0 <= low <= high <= _UINT16_MAX:
        raise ValueError(
            f"a 32-bit integer image with values in [{low:g}, {high:g}], outside the "
            f"16-bit range 0-{_UINT16_MAX}: save it as 8 or 16 bits"
        )
    return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8))


def oriented_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Return ``(width, height)`` of an image as it is displayed: its EXIF orientation applied.

    Only the header is read. A camera that stores a portrait photo
    sideways records an orientation (EXIF tag 274) of 5 to 8, and every
    viewer shows the image turned: width and height trade places.

    Parameters
    ----------
    path : path-like
        The image file.

    Returns
    -------
    tuple of int
        The displayed width and height in pixels.
    """
    with Image.open(path) as image:
        return _displayed_size(image)


def _displayed_size(image: Image.Image) -> tuple[int, int]:
    """Return ``(width, height)`` of an open image with its EXIF orientation applied (header only)."""
    width, height = image.size
    turned = image.getexif().get(ExifTags.Base.Orientation) in _TURNING_ORIENTATIONS
    return (height, width) if turned else (width, height)


def decode_image(
    path: str | os.PathLike[str], size: int, mode: str, resize: str = DEFAULT_RESIZE
) -> np.ndarray:
    """Decode one image file into a ``(C, size, size)`` uint8 array.

    Parameters
    ----------
    path : path-like
        The image file.
    size : int
        Output side length in pixels.
    mode : {"RGB", "L"}
        Output colour mode (3 or 1 channels).
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How the image is brought to a square (see the module docstring);
        the geometry comes from the file's size as displayed, its EXIF
        orientation applied (:func:`oriented_size`, :func:`square_geometry`).

    Returns
    -------
    numpy.ndarray of shape (C, size, size), dtype uint8
        The resized image, upright. 16-bit values keep their top 8 bits,
        float values in [0, 1] are scaled to 0-255.

    Raises
    ------
    OSError
        If Pillow cannot open or fully decode the file (including truncated
        files).
    ValueError
        For a float image with values outside [0, 1] (NaN included) or a
        32-bit integer image outside 0-65535, which could only be clipped.
    PIL.Image.DecompressionBombError
        If the image is larger than Pillow's decompression-bomb limit.
    """
    with Image.open(path) as image:
        (height, width), corner = square_geometry(*_displayed_size(image), size, resize)
        image.draft(mode, (size, size))
        converted = _eight_bit(ImageOps.exif_transpose(image)).convert(mode)
    array = np.asarray(converted.resize((width, height), RESAMPLE), dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(place(array, corner, size))


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a boolean mask to ``size`` x ``size`` (or ``(h, w)``) so that no defect is lost.

    Output cell ``(i, j)`` covers the source rows ``[i H / h, (i + 1) H /
    h)`` and columns alike; it is True when any source pixel overlapping
    it is (the maximum over the cell's area, not the nearest pixel), so a
    one-pixel defect survives any shrinking, and enlarging keeps its place.

    Parameters
    ----------
    mask : numpy.ndarray of shape (H, W), dtype bool
        The mask at its source resolution.
    size : int or tuple of int
        Output side length in pixels, or ``(h, w)``.

    Returns
    -------
    numpy.ndarray of shape (size, size) or (h, w), dtype bool
        The resized mask.

    Examples
    --------
    >>> mask = np.zeros((100, 100), bool)
    >>> mask[30, 81] = True
    >>> np.argwhere(resize_mask(mask, 8)).tolist()
    [[2, 6]]
    """
    source = np.asarray(mask, dtype=bool)
    shape = (size, size) if isinstance(size, (int, np.integer)) else size
    for axis, cells_out in enumerate(shape):
        length = source.shape[axis]
        cells = np.arange(cells_out + 1)
        first = cells[:-1] * length // cells_out
        stop = -(-cells[1:] * length // cells_out)  # ceiling: a cell ends past any pixel it overlaps
        counts = np.cumsum(source, axis=axis, dtype=np.int32)
        counts = np.insert(counts, 0, 0, axis=axis)
        source = (np.take(counts, stop, axis=axis) - np.take(counts, first, axis=axis)) > 0
    return source


def fit_mask(mask: np.ndarray, size: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """Bring a boolean mask to ``size`` x ``size`` with the geometry its image gets.

    The mask is scaled as its image is (:func:`square_geometry`), keeping
    every defect (:func:`resize_mask`), then padded with False or cropped
    as the image is: a defect pixel lands where its image pixel lands, and
    padding is defect-free.

    Parameters
    ----------
    mask : numpy.ndarray of shape (H, W), dtype bool
        The mask at its image's resolution.
    size : int
        Output side length in pixels.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        See the module docstring.

    Returns
    -------
    numpy.ndarray of shape (size, size), dtype bool
        The mask in the square.

    Examples
    --------
    >>> mask = np.zeros((10, 40), bool)
    >>> mask[0, 0] = True
    >>> np.argwhere(fit_mask(mask, 8, "pad")).tolist(), bool(fit_mask(mask, 8, "crop").any())
    ([[3, 0]], False)
    """
    scaled, corner = square_geometry(mask.shape[1], mask.shape[0], size, resize)
    return place(resize_mask(mask, scaled), corner, size)


def _source_axis(
    n_source: int, n_scaled: int, offset: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Place the source pixels of one axis on the square's cells, for :func:`map_to_source`.

    Source pixel ``i`` has its centre at ``(i + 0.5) n_scaled / n_source +
    offset`` in the square (cell ``j`` spans ``[j, j + 1)``). Returns the
    two cells it is interpolated between, the weight of the second, and
    whether the centre lies inside the square. Positions are clamped to the
    cells the scaled image covers, so padding never leaks in.
    """
    centre = (np.arange(n_source) + 0.5) * (n_scaled / n_source) + offset
    first_cell, last_cell = max(offset, 0), min(offset + n_scaled, size) - 1
    position = np.clip(centre - 0.5, first_cell, last_cell)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, last_cell)
    return below, above, position - below, (centre >= 0) & (centre < size)


def map_to_source(array: np.ndarray, shape: tuple[int, int], resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """Bring a ``size`` x ``size`` map back to its source image's ``(H, W)``, undoing :func:`square_geometry`.

    The inverse of the geometry images and masks get (:func:`decode_image`,
    :func:`fit_mask`), for anomaly maps: source pixel ``(y, x)`` takes the
    bilinear interpolation of the map at the point its centre lands on in
    the square (cell centres at half-integers, edges clamped).

    - ``"stretch"``: a bilinear resize from ``(size, size)`` to ``(H, W)``;
    - ``"pad"``: the padding is cut away (never interpolated with) and the
      image's part resized to ``(H, W)``;
    - ``"crop"``: the square is resized back onto the region of the source
      it shows; the pixels whose centre falls outside it, cropped away
      before the model saw them, are unknown: NaN.

    A mask made by :func:`fit_mask` and mapped back is positive on every
    defect pixel the square shows, and only less than 1.5 cells plus half a
    pixel from a defect pixel along each axis (a cell spans ``H / h`` source
    rows and ``W / w`` columns, ``(h, w)`` the scaled size): one cell from
    :func:`resize_mask`, which marks every cell a defect touches, and half a
    cell from the interpolation.

    Parameters
    ----------
    array : numpy.ndarray of shape (..., size, size)
        The map (or maps) at the loaded resolution.
    shape : tuple of int
        ``(H, W)`` of the source image.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        The resize mode the image was loaded with.

    Returns
    -------
    numpy.ndarray of shape (..., H, W), floating
        The map at the source size, float32 for float32 or smaller input,
        float64 otherwise; NaN on the pixels ``"crop"`` cut away (a band of
        whole rows or whole columns, so the known pixels form a rectangle).

    Raises
    ------
    ValueError
        For a map that is not square, or an unknown ``resize``.

    Examples
    --------
    >>> square = np.zeros((4, 4))
    >>> square[1:3, 0] = 1.0  # the image's first column, padded above and below
    >>> map_to_source(square, (2, 4), "pad")
    array([[1., 0., 0., 0.],
           [1., 0., 0., 0.]])
    >>> np.isnan(map_to_source(np.zeros((2, 2)), (2, 4), "crop")[0]).tolist()
    [True, False, False, True]
    """
    values = np.asarray(array)
    size = values.shape[-1]
    if values.ndim < 2 or values.shape[-2] != size:
        raise ValueError(f"the map must be (..., size, size), got shape {values.shape}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(map(repr, RESIZE_MODES))}, got {resize!r}")
    height, width = shape
    (scaled_h, scaled_w), (top, left) = square_geometry(width, height, size, resize)
    row_lo, row_hi, row_w, known_rows = _source_axis(height, scaled_h, top, size)
    col_lo, col_hi, col_w, known_cols = _source_axis(width, scaled_w, left, size)
    values = values.astype(np.result_type(values.dtype, np.float32), copy=False)
    row_w, col_w = row_w.astype(values.dtype), col_w.astype(values.dtype)
    rows = values[..., row_lo, :] * (1 - row_w)[:, None] + values[..., row_hi, :] * row_w[:, None]
    out = rows[..., col_lo] * (1 - col_w) + rows[..., col_hi] * col_w
    out[..., ~known_rows, :] = np.nan
    out[..., ~known_cols] = np.nan
    return out


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ground-truth mask image at its own resolution: True where it is nonzero.

    Parameters
    ----------
    path : path-like
        The mask image: nonzero pixels (in any colour channel, alpha
        ignored) are defects, as for :func:`decode_mask`.

    Returns
    -------
    numpy.ndarray of shape (H, W), dtype bool
        The defect pixels.

    Raises
    ------
    OSError
        If Pillow cannot open or decode the file.
    """
    stat_image_file(path)
    with Image.open(path) as mask:
        return np.asarray(_defect_pixels(ImageOps.exif_transpose(mask)), dtype=bool)


def _defect_pixels(image: Image.Image) -> np.ndarray:
    """Return where a mask image is nonzero, in any colour channel (alpha ignored)."""
    if image.mode in ("LA", "La"):
        image = image.getchannel(0)
    elif image.mode not in GREY_PILLOW_MODES:
        return np.asarray(np.asarray(image.convert("RGB")).any(axis=2))
    return np.not_equal(np.asarray(image), 0)


def decode_mask(
    path: str | os.PathLike[str],
    size: int,
    image: str | os.PathLike[str] | None = None,
    resize: str = DEFAULT_RESIZE,
) -> np.ndarray:
    """Decode a ground-truth mask image into a ``(1, size, size)`` uint8 array of 0 and 1.

    Parameters
    ----------
    path : path-like
        The mask image: nonzero pixels (in any colour channel) are defects.
    size : int
        Output side length in pixels; see :func:`resize_mask`.
    image : path-like, optional
        The image the mask belongs to; its header is read to check that
        both have one size.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        The image's resize mode, which the mask follows (:func:`fit_mask`).

    Returns
    -------
    numpy.ndarray of shape (1, size, size), dtype uint8
        1 where the resized mask is defective.

    Raises
    ------
    ValueError
        If the mask's size differs from its image's, naming both sizes.
    OSError
        If Pillow cannot open or decode a file.
    """
    with Image.open(path) as opened:
        mask = ImageOps.exif_transpose(opened)
        if image is not None:
            expected = oriented_size(image)
            if mask.size != expected:
                raise ValueError(
                    f"the mask is {mask.size[0]}x{mask.size[1]} px but its image {os.fspath(image)} "
                    f"is {expected[0]}x{expected[1]} px (width x height)"
                )
        defect = _defect_pixels(mask)
    return fit_mask(defect, size, resize)[None].astype(np.uint8)


def decode_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    size: int,
    mode: str,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    fail_fast: bool = False,
    images_of: Sequence[str | os.PathLike[str]] | None = None,
    resize: str = DEFAULT_RESIZE,
) -> tuple[np.ndarray, dict[int, BaseException]]:
    """Decode image files into one ``(n, C, size, size)`` uint8 array, with caching.

    Parameters
    ----------
    paths : sequence of path-like
        The files, in output order.
    size : int
        Output side length in pixels.
    mode : {"RGB", "L", "mask"}
        Output colour mode, or :data:`MASK_MODE` for ground-truth masks
        (:func:`decode_mask`: one channel of 0 and 1).
    cache : bool, default True
        Read and write the disk cache.
    cache_dir : path-like, optional
        Cache folder; see :func:`mmocc.data.cache.resolve_cache_dir`.
    n_jobs : int, default 1
        Decoding threads.
    fail_fast : bool, default False
        Decode nothing when a file is missing.
    images_of : sequence of path-like, optional
        With :data:`MASK_MODE`: the image of each mask, whose size it must
        have; their stats join the cache key.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images (and masks, alike) are brought to a square (see the
        module docstring); part of the cache key, so an entry decoded with
        another mode is never served.

    Returns
    -------
    images : numpy.ndarray of shape (n, C, size, size), dtype uint8
        The images; rows of failed files are zero.
    errors : dict of int to Exception
        The exception raised for each failed file, by index into ``paths``
        (``FileNotFoundError`` for a missing file; see
        :func:`stat_image_file` for folders, pipes and devices, which are
        never opened). Nothing is cached when it is not empty.
    """
    images = np.zeros((len(paths), _CHANNELS[mode], size, size), dtype=np.uint8)
    stats, errors = _key_stats(paths, images_of)
    if errors and fail_fast:
        return images, errors
    target = None
    if cache and not errors:
        settings = {
            "size": int(size),
            "mode": mode,
            "resize": resize,
            "resample": _MASK_RESAMPLE if mode == MASK_MODE else RESAMPLE.name,
            "format": CACHE_FORMAT_VERSION,
            "pillow": PIL.__version__,
        }
        target = _cache.cache_path(_cache.resolve_cache_dir(cache_dir), _cache.cache_key(stats, settings))
        cached = _cache.read_cached(target, images.shape)
        if cached is not None:
            logger.debug("cache hit: %d images from %s", len(cached), target)
            return cached, {}

    # the default mode is not passed: a decode_image wrapped with its old signature keeps working
    fit = () if resize == DEFAULT_RESIZE else (resize,)

    def work(block: Sequence[int]) -> dict[int, BaseException]:
        failed: dict[int, BaseException] = {}
        for i in block:
            try:
                if mode == MASK_MODE:
                    images[i] = decode_mask(
                        paths[i], size, None if images_of is None else images_of[i], resize
                    )
                else:
                    images[i] = decode_image(paths[i], size, mode, *fit)
            except Exception as exc:  # any failure of one file is reported against that file
                failed[i] = exc
        return failed

    todo = [i for i in range(len(paths)) if i not in errors]
    if n_jobs > 1 and len(todo) > 1:
        step = max(1, min(_FILES_PER_TASK, -(-len(todo) // n_jobs)))
        with ThreadPoolExecutor(max_workers=min(n_jobs, len(todo))) as pool:
            for failed in pool.map(work, [todo[i : i + step] for i in range(0, len(todo), step)]):
                errors.update(failed)
    else:
        errors.update(work(todo))
    logger.debug("decoded %d images (%d failed)", len(todo), len(errors))
    if target is not None and not errors:
        _cache.store(target, images)
    return images, errors


def _describe(context: str, view: str, path: Path, exc: BaseException, what: str) -> str:
    """One-line description of a failed file; ``what`` is "image" or "mask"."""
    if isinstance(exc, FileNotFoundError):
        return f"{context}, view {view!r}: {'mask ' if what == 'mask' else ''}file not found: {path}"
    return f"{context}, view {view!r}: cannot read {what} {path}: {type(exc).__name__}: {exc}"


def reject(message: str, on_error: str, skipped: list[str]) -> None:
    """Handle a bad sample found before decoding, as the sources' ``on_error`` says.

    Parameters
    ----------
    message : str
        What is wrong, naming the sample or file.
    on_error : {"raise", "skip"}
        ``"raise"`` raises; ``"skip"`` appends ``message`` to ``skipped``, for
        the warning :func:`warn_skipped` issues.
    skipped : list of str
        The messages of the samples skipped so far.

    Raises
    ------
    ValueError
        With ``message``, when ``on_error="raise"``.
    """
    if on_error == "raise":
        raise ValueError(message)
    skipped.append(message)


class SkippedWarning(UserWarning):
    """The warning that lists the samples or files skipped under ``on_error="skip"``.

    Parameters
    ----------
    lines : sequence of str
        One line per skipped file or sample; kept as :attr:`lines`.
    shown : int, optional
        List only the first ``shown`` lines in the message, and the count;
        default all.
    """

    def __init__(self, lines: Sequence[str], shown: int | None = None) -> None:
        listed = list(lines if shown is None else lines[:shown])
        more = f"\n  ... ({len(lines)} in all)" if len(listed) < len(lines) else ""
        super().__init__(f"skipped {len(lines)} bad file(s) or sample(s):\n  " + "\n  ".join(listed) + more)
        self.lines = list(lines)


def warn_skipped(messages: Sequence[str], shown: int | None = None) -> None:
    """Issue the single warning listing every skipped sample or file (a :class:`SkippedWarning`).

    Parameters
    ----------
    messages : sequence of str
        One line per skipped file or sample; nothing happens when empty.
    shown : int, optional
        List only the first ``shown`` of them, and their number.
    """
    if messages:
        warnings.warn(SkippedWarning(messages, shown), stacklevel=4)


def resolve_mode(mode: str, samples: Sequence[Mapping[str, Path]]) -> str:
    """Turn ``mode="auto"`` into ``"L"`` or ``"RGB"`` by looking at the files.

    Only the first sample's files are opened, and only their headers are
    read: ``"L"`` when every one of them is greyscale (Pillow modes
    :data:`GREY_PILLOW_MODES`), ``"RGB"`` otherwise (palette images count as
    colour). An unreadable first file gives ``"RGB"``; decoding reports it.

    Parameters
    ----------
    mode : {"RGB", "L", "auto"}
        The requested mode.
    samples : sequence of mapping of str to pathlib.Path
        For each sample, the file of each view.

    Returns
    -------
    str
        ``mode`` itself unless it is ``"auto"``.
    """
    if mode != AUTO_MODE:
        return mode
    if not samples:
        return "RGB"
    try:
        modes = set()
        for path in samples[0].values():
            stat_image_file(path)
            with Image.open(path) as image:
                modes.add(image.mode)
    except (OSError, ValueError):
        return "RGB"
    return "L" if modes <= GREY_PILLOW_MODES else "RGB"


def _decode_columns(
    files: Mapping[str, Sequence[str]],
    contexts: Sequence[str],
    *,
    size: int,
    mode: str,
    cache: bool,
    cache_dir: str | os.PathLike[str] | None,
    on_error: str,
    n_jobs: int,
    resize: str,
    images_of: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Decode the files of some samples per view; see :func:`decode_samples`.

    Each distinct file is decoded once. An empty path (a mask without a
    file) gives a zero array. ``images_of`` gives, per view, the image of
    each mask (``mode`` is then :data:`MASK_MODE`).
    """
    index: dict[str, int] = {}
    references: list[str] = []
    for view, column in files.items():
        for row, path in enumerate(column):
            if path and path not in index:
                index[path] = len(index)
                references.extend([] if images_of is None else [images_of[view][row]])
    arrays, errors = decode_files(
        list(index),
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        fail_fast=on_error == "raise",
        images_of=None if images_of is None else references,
        resize=resize,
    )
    what = "mask" if mode == MASK_MODE else "image"
    keep = np.ones(len(contexts), dtype=bool)
    messages = []
    for row, context in enumerate(contexts if errors else ()):
        for view, column in files.items():
            exc = errors.get(index.get(column[row], -1))
            if exc is None:
                continue
            message = _describe(context, view, Path(column[row]), exc, what)
            if on_error == "raise":
                if isinstance(exc, FileNotFoundError):
                    raise FileNotFoundError(message) from exc
                raise ValueError(message) from exc
            keep[row] = False
            messages.append(message)
    blank = len(index)  # the zero row an empty path picks
    if any("" in column for column in files.values()):
        arrays = np.concatenate([arrays, np.zeros((1, *arrays.shape[1:]), arrays.dtype)])
    rows = np.flatnonzero(keep).tolist()
    views = {
        view: arrays[np.asarray([index.get(column[i], blank) for i in rows], dtype=np.intp)]
        for view, column in files.items()
    }
    return views, keep, messages


def decode_samples(
    files: Mapping[str, Sequence[str]],
    contexts: Sequence[str],
    *,
    size: int,
    mode: str,
    cache: bool,
    cache_dir: str | os.PathLike[str] | None,
    on_error: str,
    n_jobs: int,
    masks: Mapping[str, Sequence[str]] | None = None,
    resize: str = DEFAULT_RESIZE,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, list[str]]:
    """Decode the view files of some samples, and their masks, handling bad files per sample.

    Each distinct file is decoded once, even when several samples share it.
    The masks of a sample are decoded when its images are good. Nothing is
    warned: the caller reports the returned messages (see
    :func:`warn_skipped`).

    Parameters
    ----------
    files : mapping of str to sequence of str
        The file of each sample, per view; every view lists the samples in
        one order.
    contexts : sequence of str
        For each sample, how error messages name it (for example
        ``"manifest.csv line 4 (sample_id 'a7')"``).
    size, cache, cache_dir, n_jobs
        As for :func:`decode_files`.
    mode : {"RGB", "L"}
        Colour mode, already resolved (see :func:`resolve_mode`).
    on_error : {"raise", "skip"}
        ``"raise"`` stops at the first sample with a bad file; ``"skip"``
        drops samples with a bad file.
    masks : mapping of str to sequence of str, optional
        The ground-truth mask file of each sample, for some of the views
        (see :func:`decode_mask`); an empty string is a sample without
        defect (an all-False mask). A mask of another size than its image
        is a bad file.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images and their masks are brought to a square (see the module
        docstring).

    Returns
    -------
    views : dict of str to numpy.ndarray
        ``(n_kept, C, size, size)`` uint8 images per view.
    masks : dict of str to numpy.ndarray
        ``(n_kept, size, size)`` bool masks per view of ``masks``.
    keep : numpy.ndarray of bool, shape (len(contexts),)
        Which samples were kept.
    messages : list of str
        One line per bad file of the samples dropped (empty with ``"raise"``).

    Raises
    ------
    FileNotFoundError
        For a missing file, when ``on_error="raise"``.
    ValueError
        For an unreadable file or a mask of the wrong size, when
        ``on_error="raise"``.
    """
    decode = functools.partial(
        _decode_columns,
        size=size,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_jobs,
        resize=resize,
    )
    views, keep, messages = decode(files, contexts, mode=mode)
    if not masks:
        return views, {}, keep, messages
    rows = np.flatnonzero(keep).tolist()
    decoded, good, more = decode(
        {view: [column[i] for i in rows] for view, column in masks.items()},
        [contexts[i] for i in rows],
        mode=MASK_MODE,
        images_of={view: [files[view][i] for i in rows] for view in masks},
    )
    keep[np.asarray(rows, dtype=np.intp)[~good]] = False
    views = {view: array[good] for view, array in views.items()}
    return views, {view: array[:, 0] == 1 for view, array in decoded.items()}, keep, messages + more
