"""Pixel-level anomaly metrics: pixel ROC AUC and AUPRO, overall and per defect type.

``masks`` are boolean ``(n, H, W)`` ground truth (True = defect pixel) and
``maps`` the anomaly maps of the same shape (higher = more anomalous), as in
MVTec AD and anomalib.

Definitions
-----------
- **Pixel ROC AUC**: the ROC AUC of all pixels of all images, defect pixels
  positive, ties counted one half (what :func:`sklearn.metrics.roc_auc_score`
  gives on the flattened arrays).
- **AUPRO** (Bergmann et al., "The MVTec anomaly detection dataset", IJCV
  2021): the regions are the 8-connected components of each image's mask
  (``scipy.ndimage.label`` with a 3x3 structure, as the MVTec evaluation code
  does). For a threshold ``t``, PRO(t) is the mean over all regions of all
  images of the fraction of the region's pixels scoring ``>= t``, and FPR(t)
  the fraction of all defect-free pixels of all images scoring ``>= t``.
  AUPRO is the area under PRO against FPR from 0 to ``max_fpr`` (0.3), the
  curve linearly interpolated at ``max_fpr``, divided by ``max_fpr``: 1 for a
  map that ranks every defect pixel above every defect-free one, 0 for one that
  ranks them all below. Each region counts equally, so a small defect weighs as
  much as a large one.

Implementation: exact, no binning
---------------------------------
PRO(t) is a weighted true-positive rate: a defect pixel of a region of ``a``
pixels carries weight ``1 / a``, and PRO(t) is the weight scoring ``>= t``
over the number of regions. Both curves can only bend at a score some defect
pixel has, so the metrics need only those scores (the sorted distinct defect
scores, ``K`` of them) and, for every defect-free pixel, the interval between
two of them it falls into (or the one it equals). One pass over the images,
in chunks of about two million pixels, places each pixel with
:func:`numpy.searchsorted` and counts with :func:`numpy.bincount`; the curves
are cumulative sums of those counts. The result is the exact MVTec value
(every distinct threshold, ties as diagonal segments), invariant to any
strictly increasing transform of the maps. The pixel ROC AUC comes from the
same counts rather than from :func:`sklearn.metrics.roc_auc_score`, which
would sort a float64 copy of all pixels (gigabytes at 10^8 pixels); the tests
check that both agree.

Cost: ``O(N log K)`` time for ``N`` pixels, no Python loop per pixel or per
threshold. Memory beyond the inputs does not grow with the defect-free
pixels: about 100 MB of chunk buffers plus about 50 bytes per defect pixel
for each tally kept (one, or in :func:`pixel_metrics_by_type` one per defect
type plus two). Inspection data has defects on a few percent of the pixels at
most (Magnetic-tile: a median 0.6% of a defective image); only masks that
cover a large share of all pixels make the memory grow like ``N``. Measured
by ``benchmarks/pixel_metrics_speed.py`` on 1,000 maps of 256x256 (6.6e7
pixels, 0.4% defect pixels), one contended core: :func:`aupro` 8.5 s and
108 MiB beyond the inputs; five types and overall 6.1 s and 170 MiB. The
per-type breakdown reuses the one pass: each image is counted once, and a
type's row adds its images' counts to those of the normal images.

Images of different sizes cannot be stacked:
:func:`pixel_metrics_by_type_ragged` takes them as sequences, one image at a
time, in two passes (the defect scores, then the counts), and gives what
:func:`pixel_metrics_by_type` gives on a stack of the same images.

Why not a library: ``adeval`` 1.1.0 computes the same pooled definition but
requires ``opencv-python`` and ``torch``, bins the scores into 1,000
equal-width bins between the global minimum and maximum (a few outlier pixels
squeeze all other scores into a few bins) and checks its input with
``assert``; ``pyaupro`` needs ``torchmetrics``, keeps every prediction for its
exact mode and loops over thresholds in Python in its binned one; anomalib's
AUPRO needs its torch framework. The few lines below need only NumPy and SciPy
and are exact.

Examples
--------
>>> import numpy as np
>>> from mmocc.evaluation.pixel_metrics import pixel_metrics
>>> masks = np.zeros((2, 4, 4), dtype=bool)
>>> masks[0, 1:3, 1:3] = True
>>> maps = np.where(masks, 0.9, 0.1)
>>> pixel_metrics(masks, maps)
{'pixel_roc_auc': 1.0, 'aupro': 1.0}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

PIXEL_METRIC_NAMES: tuple[str, ...] = ("pixel_roc_auc", "aupro")
"""Keys of the dictionary returned by :func:`pixel_metrics`, in order."""

OVERALL = "overall"
"""Key of the all-images row in :func:`pixel_metrics_by_type`."""

_CHUNK_PIXELS = 1 << 21
# 8-connectivity inside each image, none across images of the stack.
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True


def _chunks(n_images: int, pixels_per_image: int) -> Iterator[slice]:
    """Yield slices of whole images holding about ``_CHUNK_PIXELS`` pixels each."""
    step = max(1, _CHUNK_PIXELS // max(1, pixels_per_image))
    for start in range(0, n_images, step):
        yield slice(start, min(start + step, n_images))


def _validate(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check masks and maps; return them as arrays with the defect pixel count of each image.

    Raises
    ------
    ValueError
        Shapes that are not ``(n, H, W)`` or differ, masks not boolean or 0/1,
        maps not numeric or with NaN or infinite values.
    """
    m = np.asarray(masks)
    s = np.asarray(maps)
    if m.shape != s.shape:
        raise ValueError(f"masks and maps must have the same shape, got masks {m.shape} and maps {s.shape}")
    if m.ndim != 3 or m.size == 0:
        raise ValueError(f"masks and maps must be non-empty (n_images, height, width) arrays, got {m.shape}")
    if not (m.dtype == np.bool_ or np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise ValueError(f"masks must be boolean (or 0/1), got dtype {m.dtype}")
    if not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise ValueError(f"maps must be real numbers, got dtype {s.dtype}")
    counts = np.empty(len(m), dtype=np.int64)
    for part in _chunks(len(m), m[0].size):
        chunk = m[part]
        if chunk.dtype != np.bool_:
            not_binary = ((chunk != 0) & (chunk != 1)).any(axis=(1, 2))
            if not_binary.any():
                first = part.start + int(np.flatnonzero(not_binary)[0])
                raise ValueError(f"masks must be boolean or 0/1; image {first} has other values")
        not_finite = ~np.isfinite(s[part]).all(axis=(1, 2))
        if not_finite.any():
            first = part.start + int(np.flatnonzero(not_finite)[0])
            raise ValueError(f"maps contain NaN or infinite values (first in image {first})")
        counts[part] = np.count_nonzero(chunk, axis=(1, 2))
    return m, s, counts


def _require_pixels(defect_pixels: int, all_pixels: int, where: str) -> None:
    """Raise a ValueError when ``where`` has no defect pixel or no defect-free pixel."""
    if defect_pixels == 0:
        raise ValueError(f"{where} has no defect pixel: pixel ROC AUC and AUPRO need at least one")
    if defect_pixels == all_pixels:
        raise ValueError(f"{where} has no defect-free pixel: pixel ROC AUC and AUPRO need at least one")


def _levels(masks: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Sorted distinct scores of the defect pixels, as float64."""
    found = [
        maps[part][masks[part].astype(bool, copy=False)].astype(np.float64)
        for part in _chunks(len(masks), masks[0].size)
    ]
    return np.unique(np.concatenate(found))


_Binned = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Binned pixels of some images: the bins of the defect-free pixels, of the defect pixels, and the
defect pixels' weights (one over the size of their region)."""


@dataclass
class _Tally:
    """Pixel counts on the bins of the defect score levels.

    Bin ``2j`` holds the scores strictly between ``levels[j-1]`` and
    ``levels[j]``, bin ``2j + 1`` the scores equal to ``levels[j]``; the last
    bin, ``2K``, holds the scores above every level.
    """

    negatives: np.ndarray
    positives: np.ndarray
    weights: np.ndarray
    n_regions: int = 0
    n_images: int = 0

    @classmethod
    def empty(cls, n_levels: int) -> _Tally:
        """Return a tally of no pixels on ``n_levels`` levels."""
        size = 2 * n_levels + 1
        return cls(np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.float64))

    def __add__(self, other: _Tally) -> _Tally:
        return _Tally(
            self.negatives + other.negatives,
            self.positives + other.positives,
            self.weights + other.weights,
            self.n_regions + other.n_regions,
            self.n_images + other.n_images,
        )


def _binned(masks: np.ndarray, maps: np.ndarray, levels: np.ndarray) -> tuple[_Binned, int]:
    """Place the pixels of an ``(n, H, W)`` stack on the bins of ``levels``; return them and the regions."""
    defect = masks.astype(bool, copy=False)
    regions, n_regions = ndimage.label(defect, structure=_STRUCTURE)
    area = np.bincount(regions.ravel())[regions[defect]]
    scores = maps.astype(np.float64, copy=False).ravel()
    slot = np.searchsorted(levels, scores)
    equal = levels[np.minimum(slot, len(levels) - 1)] == scores
    bins = 2 * slot + equal
    flat = defect.ravel()
    return (bins[~flat], bins[flat], 1.0 / area), int(n_regions)


def _count(total: _Tally, parts: list[_Binned]) -> None:
    """Add binned pixels to ``total`` in place, with one :func:`numpy.bincount` per count."""
    if not parts:
        return
    size = len(total.negatives)
    negatives, positives, weights = (np.concatenate([part[i] for part in parts]) for i in range(3))
    total.negatives += np.bincount(negatives, minlength=size)
    total.positives += np.bincount(positives, minlength=size)
    total.weights += np.bincount(positives, weights=weights, minlength=size)


def _tally(masks: np.ndarray, maps: np.ndarray, levels: np.ndarray, images: np.ndarray) -> _Tally:
    """Count the pixels of ``images`` (indices) on the bins of ``levels``."""
    total = _Tally.empty(len(levels))
    total.n_images = len(images)
    for part in _chunks(len(images), masks[0].size):
        binned, n_regions = _binned(masks[images[part]], maps[images[part]], levels)
        _count(total, [binned])
        total.n_regions += n_regions
    return total


def _curve(negatives: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (FPR, TPR) from the highest threshold down; counts are per bin, ascending."""
    x = np.concatenate(([0.0], np.cumsum(negatives[::-1], dtype=np.float64)))
    y = np.concatenate(([0.0], np.cumsum(positives[::-1], dtype=np.float64)))
    return x / x[-1], y / y[-1]


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under the polyline through (x, y)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _partial_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Area under the polyline from 0 to ``limit`` (interpolated there), divided by ``limit``."""
    end = int(np.searchsorted(x, limit, side="right"))
    area = _area(x[:end], y[:end])
    if end < len(x):
        x0, x1, y0, y1 = x[end - 1], x[end], y[end - 1], y[end]
        y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += (limit - x0) * (y0 + y_limit) / 2.0
    return float(area / limit)


def _scores(tally: _Tally, max_fpr: float) -> dict[str, float]:
    """Pixel ROC AUC and AUPRO from a tally."""
    fpr, tpr = _curve(tally.negatives, tally.positives)
    fpr, pro = _curve(tally.negatives, tally.weights)
    return {"pixel_roc_auc": _area(fpr, tpr), "aupro": _partial_area(fpr, pro, max_fpr)}


def _check_max_fpr(max_fpr: float) -> float:
    """Return ``max_fpr`` as a float in (0, 1], or raise a ValueError."""
    value = float(max_fpr)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    return value


def pixel_metrics(masks: Any, maps: Any, *, max_fpr: float = 0.3) -> dict[str, float]:
    """Pixel ROC AUC and AUPRO over all pixels of all images, in one pass.

    Parameters
    ----------
    masks : array-like of bool, shape (n_images, height, width)
        Ground truth, True (or 1) on defect pixels.
    maps : array-like of float, shape (n_images, height, width)
        Anomaly maps, higher is more anomalous.
    max_fpr : float, default=0.3
        Upper limit of the false-positive rate for AUPRO (0.3 in MVTec AD).

    Returns
    -------
    dict
        ``{"pixel_roc_auc": float, "aupro": float}`` (:data:`PIXEL_METRIC_NAMES`).

    Raises
    ------
    ValueError
        For shapes that differ or are not 3-D, masks that are not boolean or
        0/1, maps with NaN or infinite values, no defect pixel, no defect-free
        pixel, or ``max_fpr`` outside (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.array([[[True, False, False, False]]])
    >>> maps = np.array([[[0.5, 0.9, 0.1, 0.0]]])
    >>> pixel_metrics(masks, maps, max_fpr=0.5)
    {'pixel_roc_auc': 0.6666666666666667, 'aupro': 0.33333333333333337}
    """
    limit = _check_max_fpr(max_fpr)
    m, s, counts = _validate(masks, maps)
    _require_pixels(int(counts.sum()), m.size, "masks")
    levels = _levels(m, s)
    return _scores(_tally(m, s, levels, np.arange(len(m))), limit)


def pixel_roc_auc(masks: Any, maps: Any) -> float:
    """ROC AUC over all pixels of all images, defect pixels positive.

    Equal to ``sklearn.metrics.roc_auc_score(masks.ravel(), maps.ravel())``,
    computed exactly in bounded memory (see the module notes).

    Parameters
    ----------
    masks : array-like of bool, shape (n_images, height, width)
        Ground truth, True (or 1) on defect pixels.
    maps : array-like of float, shape (n_images, height, width)
        Anomaly maps, higher is more anomalous.

    Returns
    -------
    float
        The pixel ROC AUC.

    Raises
    ------
    ValueError
        As :func:`pixel_metrics`.

    Examples
    --------
    >>> import numpy as np
    >>> pixel_roc_auc(np.array([[[True, False, False]]]), np.array([[[0.5, 0.9, 0.1]]]))
    0.5
    """
    return pixel_metrics(masks, maps)["pixel_roc_auc"]


def aupro(masks: Any, maps: Any, *, max_fpr: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to ``max_fpr`` (MVTec AD).

    Regions are the 8-connected components of each mask; every region counts
    equally. The value is exact (every distinct threshold; see the module notes).

    Parameters
    ----------
    masks : array-like of bool, shape (n_images, height, width)
        Ground truth, True (or 1) on defect pixels.
    maps : array-like of float, shape (n_images, height, width)
        Anomaly maps, higher is more anomalous.
    max_fpr : float, default=0.3
        Upper limit of the false-positive rate, also the normaliser.

    Returns
    -------
    float
        AUPRO in [0, 1].

    Raises
    ------
    ValueError
        As :func:`pixel_metrics`.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.zeros((1, 3, 5), dtype=bool)
    >>> masks[0, 1, 1] = masks[0, 1, 3] = True
    >>> maps = np.full((1, 3, 5), 0.5)
    >>> maps[0, 1, 1], maps[0, 1, 3] = 1.0, 0.0  # one region found, one missed
    >>> aupro(masks, maps)
    0.5
    """
    return pixel_metrics(masks, maps, max_fpr=max_fpr)["aupro"]


def _normal_set(normal: Any) -> set[Any]:
    """Return the normal label(s) as a set: one label, or a list, tuple or set of labels."""
    if isinstance(normal, (list, tuple, set, frozenset)):
        return set(normal)
    return {normal}


def _groups(labels: Any, n_images: int, normal: set[Any]) -> tuple[np.ndarray, dict[Any, np.ndarray]]:
    """Return the indices of the normal images, and of each defect type's images (types sorted)."""
    values = list(np.asarray(labels, dtype=object).ravel())
    if len(values) != n_images:
        raise ValueError(f"labels has {len(values)} entries but masks and maps have {n_images} images")
    kinds = [value.item() if isinstance(value, np.generic) else value for value in values]
    types = sorted({k for k in kinds if k not in normal}, key=str)
    if OVERALL in types:
        raise ValueError(f"a defect type is named {OVERALL!r}, the key of the all-images row; rename it")
    index = np.arange(n_images)
    is_normal = np.array([k in normal for k in kinds], dtype=bool)
    return index[is_normal], {t: index[[k == t for k in kinds]] for t in types}


def _row(tally: _Tally, max_fpr: float) -> dict[str, float]:
    """Return a per-type row: the metrics and the counts behind them."""
    return {**_scores(tally, max_fpr), "n_images": tally.n_images, "n_regions": tally.n_regions}


def pixel_metrics_by_type(
    masks: Any, maps: Any, labels: Sequence[Any] | np.ndarray, *, normal: Any = 0, max_fpr: float = 0.3
) -> dict[Any, dict[str, float]]:
    """Pixel ROC AUC and AUPRO per defect type and over all images.

    A type's row is computed on the images of that type plus every normal
    image, as MVTec AD reports a category; the :data:`OVERALL` row on all
    images. Each row also gives ``n_images`` and ``n_regions`` (the defect
    regions its AUPRO averages over).

    Parameters
    ----------
    masks : array-like of bool, shape (n_images, height, width)
        Ground truth, True (or 1) on defect pixels.
    maps : array-like of float, shape (n_images, height, width)
        Anomaly maps, higher is more anomalous.
    labels : sequence of length n_images
        Each image's defect type, or a normal label.
    normal : label or list of labels, default=0
        The label(s) of defect-free images (``"good"`` in the MVTec layout).
    max_fpr : float, default=0.3
        Upper limit of the false-positive rate for AUPRO.

    Returns
    -------
    dict
        ``{type: {"pixel_roc_auc", "aupro", "n_images", "n_regions"}}`` for
        each defect type (sorted by name), then ``"overall"``.

    Raises
    ------
    ValueError
        As :func:`pixel_metrics`, and for labels of the wrong length, a
        normal image whose mask has defect pixels, a type with no defect pixel
        or a type named ``"overall"``.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.zeros((3, 2, 2), dtype=bool)
    >>> masks[1, 0, 0] = masks[2, 1, 1] = True
    >>> maps = np.where(masks, 1.0, 0.0)
    >>> maps[2] = 1.0 - maps[2]
    >>> rows = pixel_metrics_by_type(masks, maps, ["good", "crack", "stain"], normal="good")
    >>> {kind: row["aupro"] for kind, row in rows.items()}
    {'crack': 1.0, 'stain': 0.0, 'overall': 0.25}
    """
    limit = _check_max_fpr(max_fpr)
    m, s, counts = _validate(masks, maps)
    normals, types = _groups(labels, len(m), _normal_set(normal))
    if counts[normals].any():
        first = int(normals[np.flatnonzero(counts[normals])[0]])
        raise ValueError(f"image {first} is labelled normal but its mask has {counts[first]} defect pixels")
    pixels = m[0].size
    _require_pixels(int(counts.sum()), m.size, "masks")
    for kind, images in types.items():
        _require_pixels(int(counts[images].sum()), pixels * (len(images) + len(normals)), f"type {kind!r}")
    levels = _levels(m, s)
    base = _tally(m, s, levels, normals)
    own = {kind: _tally(m, s, levels, images) for kind, images in types.items()}
    rows = {kind: _row(base + tally, limit) for kind, tally in own.items()}
    rows[OVERALL] = _row(sum(own.values(), start=base), limit)
    return rows


def _ragged_pair(index: int, mask: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check one image of a ragged input; return its mask and map as arrays.

    Raises
    ------
    ValueError
        As :func:`_validate`, naming the image.
    """
    m, s = np.asarray(mask), np.asarray(score)
    if m.ndim != 2 or m.shape != s.shape or m.size == 0:
        raise ValueError(
            f"image {index}: mask and map must be non-empty 2-D arrays of one shape, "
            f"got {m.shape} and {s.shape}"
        )
    if not (m.dtype == np.bool_ or np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise ValueError(f"image {index}: masks must be boolean (or 0/1), got dtype {m.dtype}")
    if m.dtype != np.bool_ and ((m != 0) & (m != 1)).any():
        raise ValueError(f"image {index}: masks must be boolean or 0/1; this one has other values")
    if not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise ValueError(f"image {index}: maps must be real numbers, got dtype {s.dtype}")
    if not np.isfinite(s).all():
        raise ValueError(f"image {index}: the map contains NaN or infinite values")
    return m, s


def _ragged_levels(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First pass: check each image; return its defect and all pixel counts, and the defect scores."""
    counts = np.zeros(len(masks), dtype=np.int64)
    pixels = np.zeros(len(masks), dtype=np.int64)
    found = [np.zeros(0)]
    for i in range(len(masks)):
        m, s = _ragged_pair(i, masks[i], maps[i])
        defect = m.astype(bool, copy=False)
        counts[i], pixels[i] = np.count_nonzero(defect), m.size
        found.append(s[defect].astype(np.float64))
    return counts, pixels, np.unique(np.concatenate(found))


def _ragged_tallies(masks: Any, maps: Any, levels: np.ndarray, group: np.ndarray) -> dict[int, _Tally]:
    """Second pass: count image ``i`` into the tally of ``group[i]``.

    Each image is placed on the bins on its own (whatever its shape); a
    group's binned pixels are counted at once every ``_CHUNK_PIXELS`` pixels,
    so the count arrays (as long as the number of distinct defect scores) are
    added to about once per two million pixels, not once per image.
    """
    tallies = {int(g): _Tally.empty(len(levels)) for g in np.unique(group)}
    pending: dict[int, list[_Binned]] = {g: [] for g in tallies}
    waiting = dict.fromkeys(tallies, 0)
    for i in range(len(masks)):
        g, mask = int(group[i]), np.asarray(masks[i])
        binned, n_regions = _binned(mask[None], np.asarray(maps[i])[None], levels)
        tallies[g].n_regions += n_regions
        tallies[g].n_images += 1
        pending[g].append(binned)
        waiting[g] += mask.size
        if waiting[g] >= _CHUNK_PIXELS:
            _count(tallies[g], pending[g])
            pending[g], waiting[g] = [], 0
    for g, parts in pending.items():
        _count(tallies[g], parts)
    return tallies


def pixel_metrics_by_type_ragged(
    masks: Any, maps: Any, labels: Sequence[Any] | np.ndarray, *, normal: Any = 0, max_fpr: float = 0.3
) -> dict[Any, dict[str, float]]:
    """:func:`pixel_metrics_by_type` for images of different sizes, one image at a time.

    The same metrics and rows as :func:`pixel_metrics_by_type` (equal on
    images of one size, up to the rounding of sums taken in another order),
    from a sequence of ``(H_i, W_i)`` masks and maps instead of one stack.
    No stack of all images is built: ``masks[i]`` and ``maps[i]`` are read
    twice, in the order ``i = 0, 1, ...``, once to check them and collect the
    defect pixels' scores, once to count; sequences that read or compute
    image ``i`` when it is asked for keep one image (and a run of at most
    about two million pixels of same-size images) in memory.

    Parameters
    ----------
    masks : sequence of array-like of bool, each of shape (H_i, W_i)
        Ground truth, True (or 1) on defect pixels; anything with ``len``
        and ``[i]``.
    maps : sequence of array-like of float, each of shape (H_i, W_i)
        Anomaly maps, higher is more anomalous, each the shape of its mask.
    labels : sequence of length n_images
        Each image's defect type, or a normal label.
    normal : label or list of labels, default=0
        The label(s) of defect-free images.
    max_fpr : float, default=0.3
        Upper limit of the false-positive rate for AUPRO.

    Returns
    -------
    dict
        As :func:`pixel_metrics_by_type`.

    Raises
    ------
    ValueError
        As :func:`pixel_metrics_by_type` (naming the image for a bad mask
        or map), and for ``masks`` and ``maps`` of different lengths or none.

    Examples
    --------
    >>> import numpy as np
    >>> masks = [np.zeros((2, 3), bool), np.eye(4, dtype=bool)]
    >>> maps = [np.zeros((2, 3)), np.eye(4) + 0.5]
    >>> rows = pixel_metrics_by_type_ragged(masks, maps, ["good", "crack"], normal="good")
    >>> rows["crack"]["aupro"], rows["overall"]["n_images"]
    (1.0, 2)
    """
    limit = _check_max_fpr(max_fpr)
    if len(masks) != len(maps) or not len(masks):
        raise ValueError(f"masks and maps need as many images (at least one), got {len(masks)}, {len(maps)}")
    normals, types = _groups(labels, len(masks), _normal_set(normal))
    counts, pixels, levels = _ragged_levels(masks, maps)
    if counts[normals].any():
        first = int(normals[np.flatnonzero(counts[normals])[0]])
        raise ValueError(f"image {first} is labelled normal but its mask has {counts[first]} defect pixels")
    _require_pixels(int(counts.sum()), int(pixels.sum()), "masks")
    for kind, images in types.items():
        inside = np.r_[images, normals]
        _require_pixels(int(counts[images].sum()), int(pixels[inside].sum()), f"type {kind!r}")
    group = np.full(len(masks), -1)
    for number, images in enumerate(types.values()):
        group[images] = number
    tallies = _ragged_tallies(masks, maps, levels, group)
    base = tallies.get(-1, _Tally.empty(len(levels)))
    own = {kind: tallies[number] for number, kind in enumerate(types)}
    rows = {kind: _row(base + tally, limit) for kind, tally in own.items()}
    rows[OVERALL] = _row(sum(own.values(), start=base), limit)
    return rows
