"""Synthetic local defects painted into one view of multi-view samples.

Local anomaly detectors (DESIGN §8) are judged on samples that are normal
except for a small defect that only one camera sees. This module makes such
samples from normal ones: every sample gets exactly one defect, in exactly one
randomly chosen image view, and a pixel mask that marks what changed.

Three kinds of defect are drawn, all on the object (the foreground, estimated
against the background colour of the image border):

``"blob"``
    A stain: an irregular filled region (a disc whose edge is perturbed by
    smooth noise) painted, with a little texture, in a colour far from the
    object underneath and from the background (on a bright object a dark
    stain, on a brown one a vivid colour).
``"scratch"``
    One or a few thin curved strokes (1-2 px wide at 32 px, scaled with the
    image size) of a nearly grey level that contrasts with the object,
    clipped to the object.
``"erase"``
    A missing part: an irregular region of the object replaced by the
    background (the border median plus noise of the border's spread).

Vector views are copied unchanged and never chosen.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.inputs import check_sample_counts, check_view
from mmocc.utils.text import did_you_mean

#: The defect kinds :func:`paint_defects` can draw.
DEFECT_KINDS = ("blob", "scratch", "erase")
_KIND_DTYPE = f"<U{max(map(len, DEFECT_KINDS))}"

_NOISE_OCTAVES = ((5, 1.0), (12, 0.5))  # (grid points per side, weight) of the noise roughening edges
_EDGE_NOISE = 0.55  # weight of that noise against the distance to the centre, in disc radii
_CHUNK = 256  # images painted at once (bounds the memory of the batch arrays)
_COLOUR_CANDIDATES = 16  # random colours per defect, the most contrasting one is used
_STROKE_ROUNDS = 3  # rounds of scratch strokes tried before settling for a smaller area
_STROKES_PER_ROUND = 4  # best strokes drawn per round (fewer are kept when they suffice)
_STROKE_CANDIDATES = 24  # random strokes compared per round for how much of them lies on the object
_STROKE_SPACING = 0.5  # px between the points stamped along a stroke
_SCRATCH_BUDGET = 4_000_000  # stroke stamp positions rasterised at once (bounds memory)


@dataclass
class DefectBatch:
    """Views with one painted defect per sample, and where it is.

    Attributes
    ----------
    views : dict of str to numpy.ndarray
        Copies of every input view, in the input order, shapes and dtypes
        kept; each sample has a defect in one of its image views.
    masks : dict of str to numpy.ndarray
        For each view in :attr:`view_names`, a bool array ``(n, H, W)`` that
        is True at the pixels the defect changed; all False for the samples
        whose defect is in another view.
    defect_view : numpy.ndarray of shape (n,)
        Index into :attr:`view_names` of the view holding each sample's defect.
    kind : numpy.ndarray of shape (n,)
        The kind of each sample's defect, one of :data:`DEFECT_KINDS`.
    view_names : tuple of str
        The image views defects were painted into.
    """

    views: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    defect_view: np.ndarray
    kind: np.ndarray
    view_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def defect_view_names(self) -> np.ndarray:
        """numpy.ndarray of str: the name of the view holding each sample's defect."""
        return np.asarray(self.view_names, dtype=object)[self.defect_view].astype(str)


# ----------------------------------------------------------------------------- checks


def _check_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Return ``kinds`` as a non-empty tuple of known kinds."""
    chosen = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not chosen:
        raise ValueError(f"kinds must name at least one defect kind from {DEFECT_KINDS}")
    for kind in chosen:
        if kind not in DEFECT_KINDS:
            raise ValueError(
                f"unknown defect kind {kind!r}{did_you_mean(str(kind), DEFECT_KINDS)} "
                f"(choose from {DEFECT_KINDS})"
            )
    return chosen


def _check_area(area: Any) -> tuple[float, float]:
    """Return ``area`` as ``(low, high)`` with ``0 < low <= high <= 0.5``."""
    try:
        low, high = (float(value) for value in area)
    except (TypeError, ValueError):
        raise ValueError(f"area must be a pair (low, high) of image fractions, got {area!r}") from None
    if not (0.0 < low <= high <= 0.5):
        raise ValueError(f"area must satisfy 0 < low <= high <= 0.5 (fractions of the image), got {area!r}")
    return low, high


def _image_views(views: Mapping[str, np.ndarray], view_names: Sequence[str] | None) -> tuple[str, ...]:
    """Return the views defects may go into, checking any names given."""
    images = tuple(name for name, array in views.items() if array.ndim in (3, 4))
    if view_names is None:
        if not images:
            shapes = ", ".join(f"{name!r} {tuple(array.shape)}" for name, array in views.items())
            raise ValueError(f"no image view to paint defects into; all views are vectors (n, d): {shapes}")
        return images
    names = (view_names,) if isinstance(view_names, str) else tuple(view_names)
    if not names:
        raise ValueError(f"view_names is empty; choose from the image views {list(images)}")
    for name in names:
        if name not in views:
            raise ValueError(
                f"view {name!r} is not among the views{did_you_mean(str(name), views)}; "
                f"image views: {list(images)}"
            )
        if name not in images:
            raise ValueError(
                f"view {name!r} is a vector view of shape {tuple(views[name].shape)}; "
                f"defects go into image views only: {list(images)}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"view_names lists a view twice: {list(names)}")
    return names


def _value_range(name: str, array: np.ndarray) -> tuple[float, float]:
    """Return the intensity range ``(low, high)`` that an image view's values live in."""
    if array.dtype == np.bool_:
        raise TypeError(
            f"view {name!r}: cannot paint defects into a bool image; convert it to uint8 or float"
        )
    if array.ndim == 4 and array.shape[1] > 4 and array.shape[3] in (1, 3, 4):
        raise ValueError(
            f"view {name!r}: shape {tuple(array.shape)} looks channels-last; defects need "
            f"channels-first images (n, C, H, W)"
        )
    if array.dtype == np.uint8:
        return 0.0, 255.0
    if array.size == 0:
        return 0.0, 1.0
    low, high = float(array.min()), float(array.max())
    if np.issubdtype(array.dtype, np.integer):
        return min(0.0, low), max(high, low + 1.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"view {name!r}: holds NaN or infinite values")
    return min(0.0, low), max(1.0, high)


# ----------------------------------------------------------------------------- geometry


@functools.lru_cache(maxsize=16)
def _upsampler(size: int, grid: int) -> np.ndarray:
    """Return the ``(size, grid)`` matrix of linear interpolation from ``grid`` points."""
    position = np.linspace(0.0, grid - 1.0, size)
    lower = np.minimum(position.astype(int), grid - 2)
    frac = position - lower
    matrix = np.zeros((size, grid))
    matrix[np.arange(size), lower] = 1.0 - frac
    matrix[np.arange(size), lower + 1] = frac
    return matrix


def _smooth_noise(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """Return ``count`` smooth random fields ``(count, height, width)``, each with unit spread.

    Each field sums bilinearly interpolated Gaussian grids, one per octave of
    ``_NOISE_OCTAVES``, so region edges wobble at the scale of the image and
    at the scale of a defect.
    """
    field = np.zeros((count, height, width), dtype=np.float32)
    for points, weight in _NOISE_OCTAVES:
        grid = rng.standard_normal((count, points, points)).astype(np.float32)
        rows = _upsampler(height, points).astype(np.float32)
        cols = _upsampler(width, points).astype(np.float32)
        field += np.float32(weight) * (rows @ grid @ cols.T)
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-6
    return field


def _backgrounds(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-channel border median and robust border spread, each ``(n, C)``."""
    border = np.concatenate(
        [images[:, :, 0, :], images[:, :, -1, :], images[:, :, 1:-1, 0], images[:, :, 1:-1, -1]], axis=2
    )
    median = np.median(border, axis=2)
    spread = 1.4826 * np.median(np.abs(border - median[:, :, None]), axis=2)
    return median, spread


def _foregrounds(images: np.ndarray, median: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Return bool ``(n, H, W)``: pixels that differ clearly from the background."""
    difference = np.abs(images[:, 0] - median[:, 0, None, None])
    for channel in range(1, images.shape[1]):
        np.maximum(difference, np.abs(images[:, channel] - median[:, channel, None, None]), out=difference)
    threshold = np.maximum(0.08, 4.0 * spread.max(axis=1))
    return difference > threshold[:, None, None]


def _pick_centres(rng: np.random.Generator, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw one pixel per image with probability proportional to ``weight`` ``(m, H, W)``.

    Images with no weight get their centre pixel.
    """
    m, height, width = weight.shape
    cumulative = np.cumsum(weight.reshape(m, -1), axis=1, dtype=np.float64)
    total = cumulative[:, -1]
    index = (cumulative <= (rng.uniform(size=m) * total)[:, None]).sum(axis=1)
    index = np.where(total > 0, np.minimum(index, height * width - 1), (height // 2) * width + width // 2)
    return np.divmod(index, width)


def _irregular_regions(
    rng: np.random.Generator, foreground: np.ndarray, counts: np.ndarray, interior: bool, spill: bool
) -> np.ndarray:
    """Return bool regions ``(m, H, W)`` of ``counts`` pixels around object centres, with noisy edges.

    A centre is drawn from the object's pixels (with ``interior``, favouring
    pixels whose neighbourhood is mostly object). Pixels are ranked by
    distance to the centre, in units of the radius of a disc of ``counts``
    pixels, plus smooth noise; pixels within 1.3 radii come first, object
    pixels before all others, which are used only with ``spill``.
    """
    m, height, width = foreground.shape
    weight = foreground.astype(np.float32)
    if interior:
        size = 2 * int(np.sqrt(np.median(counts) / np.pi)) + 1
        density = ndimage.uniform_filter(weight, size=(1, size, size), mode="constant")
        weight *= density**4
    cy, cx = _pick_centres(rng, weight)
    radius = np.sqrt(counts / np.pi).astype(np.float32)[:, None, None]
    yy = np.arange(height, dtype=np.float32)[None, :, None] - cy[:, None, None]
    xx = np.arange(width, dtype=np.float32)[None, None, :] - cx[:, None, None]
    distance = np.sqrt(yy**2 + xx**2) / radius
    score = distance + _EDGE_NOISE * _smooth_noise(rng, m, height, width)
    score += np.where(distance > 1.3, np.float32(1e3), np.float32(0))  # no far-flung specks unless needed
    score = np.where(foreground, score, score + 1e6 if spill else np.inf).reshape(m, -1)
    counts = np.minimum(counts, np.isfinite(score).sum(axis=1))
    regions = np.zeros(score.shape, dtype=bool)
    most = int(counts.max(initial=0))
    if most > 0:
        nearest = np.argpartition(score, most - 1, axis=1)[:, :most]
        nearest = np.take_along_axis(nearest, np.argsort(np.take_along_axis(score, nearest, axis=1)), axis=1)
        rows = np.broadcast_to(np.arange(m)[:, None], nearest.shape)
        take = np.arange(most)[None, :] < counts[:, None]
        regions[rows[take], nearest[take]] = True
    return regions.reshape(m, height, width)


def _bezier(p0: np.ndarray, control: np.ndarray, p1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Evaluate quadratic Bezier curves; points ``(..., 2)``, ``t`` broadcast along a new axis."""
    t = t[..., None]
    return (1 - t) ** 2 * p0[..., None, :] + 2 * (1 - t) * t * control[..., None, :] + t**2 * p1[..., None, :]


def _sample_pixels(rng: np.random.Generator, mask: np.ndarray, draws: int) -> np.ndarray:
    """Draw ``draws`` pixels of each image's ``mask`` ``(m, H, W)`` uniformly; ``(m, draws, 2)`` (row, col).

    Every image must have at least one pixel in its mask.
    """
    m, height, width = mask.shape
    cumulative = np.cumsum(mask.reshape(m, -1), axis=1)
    total = cumulative[:, -1]
    start = np.concatenate([[0], np.cumsum(total)[:-1]])
    chosen = (start[:, None] + rng.uniform(size=(m, draws)) * total[:, None]).astype(np.int64)
    flat = np.searchsorted((cumulative + start[:, None]).ravel(), chosen, side="right")
    flat = np.clip(flat - np.arange(m)[:, None] * (height * width), 0, height * width - 1)
    return np.stack(np.divmod(flat, width), axis=-1).astype(np.float32)


def _scratch_regions(rng: np.random.Generator, foreground: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return bool regions ``(m, H, W)`` of up to ``counts`` object pixels covered by thin strokes.

    Each round draws random strokes for every image still short of its
    count (quadratic Bezier curves between two object pixels, bent sideways),
    ranks them by how much of their centre line lies on the object times
    their length, and rasterises the best few, in order along each stroke,
    keeping object pixels until the count is reached.
    """
    m, height, width = foreground.shape
    half_width = (0.5 * min(height, width) / 32) * rng.uniform(1.0, 2.0, size=m)
    reach = int(np.ceil(half_width.max(initial=0.5)))
    oy, ox = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    offsets = np.stack([oy.ravel(), ox.ravel()], axis=1).astype(np.float32)
    offsets = offsets[np.hypot(offsets[:, 0], offsets[:, 1]) <= reach + 0.5]  # beyond, never within reach
    # Work on the objects padded by `reach` pixels of background, so stamps never leave the array.
    padded = np.pad(foreground, ((0, 0), (reach, reach), (reach, reach))).reshape(m, -1)
    stride, size = width + 2 * reach, padded.shape[1]
    region = np.zeros(padded.shape, dtype=bool)
    flat_padded, flat_region = padded.ravel(), region.ravel()
    filled = np.zeros(m, dtype=np.intp)
    longest = int(1.2 * np.hypot(height, width) / _STROKE_SPACING) + 2
    block = max(1, _SCRATCH_BUDGET // (_STROKES_PER_ROUND * longest * len(offsets)))
    todo = np.flatnonzero(foreground.any(axis=(1, 2)) & (counts > 0))
    for _ in range(_STROKE_ROUNDS):
        for first in range(0, len(todo), block):
            rows = todo[first : first + block]
            t = len(rows)
            ends = _sample_pixels(rng, foreground[rows], 2 * _STROKE_CANDIDATES).reshape(t, -1, 2, 2)
            chord = ends[:, :, 1] - ends[:, :, 0]
            bend = rng.uniform(-0.3, 0.3, size=(t, _STROKE_CANDIDATES, 1)).astype(np.float32)
            control = ends.mean(axis=2) + bend * np.stack([-chord[..., 1], chord[..., 0]], axis=-1)
            probe = np.rint(_bezier(ends[:, :, 0], control, ends[:, :, 1], np.linspace(0, 1, 24))).astype(
                np.intp
            )
            probe = np.clip(probe, -reach, [height - 1 + reach, width - 1 + reach]) + reach
            sample = np.arange(t)[:, None, None]
            on_object = padded[rows[sample], probe[..., 0] * stride + probe[..., 1]].mean(axis=2)
            length = np.hypot(chord[..., 0], chord[..., 1])
            best = np.argsort(-(on_object**3) * length, axis=1, kind="stable")[:, :_STROKES_PER_ROUND]
            pick = (np.arange(t)[:, None], best)
            # Points every <= _STROKE_SPACING px along each stroke (bent, at most ~1.2 chords long).
            steps = int(1.2 * float(length[pick].max()) / _STROKE_SPACING) + 2
            line = _bezier(ends[pick][:, :, 0], control[pick], ends[pick][:, :, 1], np.linspace(0, 1, steps))
            line = line.astype(np.float32) + reach  # (t, strokes, steps, 2)
            ly, lx = line[..., 0, None], line[..., 1, None]
            py, px = np.floor(ly + 0.5) + offsets[:, 0], np.floor(lx + 0.5) + offsets[:, 1]
            near = (py - ly) ** 2 + (px - lx) ** 2 <= np.maximum(half_width[rows], 0.5)[
                :, None, None, None
            ] ** 2
            base = np.broadcast_to((rows * size)[:, None, None, None], near.shape)[near]
            key = base + (py[near] * stride + px[near]).astype(np.intp)  # (t, strokes, steps, offsets) order
            key = key[flat_padded[key] & ~flat_region[key]]
            _, order = np.unique(key, return_index=True)
            key = key[np.sort(order)]  # first visits, image by image, in stroke order
            owner = key // size
            rank = np.arange(len(key)) - np.searchsorted(owner, owner)
            keep = rank < (counts - filled)[owner]
            flat_region[key[keep]] = True
            filled += np.bincount(owner[keep], minlength=m)
        todo = todo[filled[todo] < counts[todo]]
        if not len(todo):
            break
    return region.reshape(m, height + 2 * reach, stride)[:, reach : reach + height, reach : reach + width]


def _colour_values(
    rng: np.random.Generator,
    values: np.ndarray,
    owner: np.ndarray,
    background: np.ndarray,
    chroma: float | None,
    alpha: tuple[float, float],
    texture: float,
) -> np.ndarray:
    """Return region pixels ``values`` ``(P, C)`` painted in a contrasting colour.

    ``owner`` says which image each pixel belongs to (an index into
    ``background``, the images' background colours ``(m, C)``). Each image
    gets one colour, the best of ``_COLOUR_CANDIDATES`` random ones: far
    from the mean of the pixels it covers (up to 0.45 RMS over channels) and
    not close to the background (up to 0.25), so it reads neither as the
    object nor as a hole. Candidates are uniform over the colour cube, or,
    with ``chroma``, grey levels tinted by up to ``chroma`` per channel. The
    colour is blended at an opacity drawn from ``alpha``, plus per-pixel
    noise of spread ``texture``. Values are in [0, 1].
    """
    count, channels = background.shape
    pixels = np.maximum(np.bincount(owner, minlength=count), 1)
    sums = [np.bincount(owner, weights=values[:, c], minlength=count) for c in range(channels)]
    local = np.stack(sums, axis=1) / pixels[:, None]
    if chroma is None:
        candidates = rng.uniform(size=(count, _COLOUR_CANDIDATES, channels))
    else:
        level = rng.uniform(size=(count, _COLOUR_CANDIDATES, 1))
        tint = rng.uniform(-chroma, chroma, size=(count, _COLOUR_CANDIDATES, channels))
        candidates = np.clip(level + tint - tint.mean(axis=2, keepdims=True), 0.0, 1.0)

    def distance(reference: np.ndarray) -> np.ndarray:
        return np.sqrt(((candidates - reference[:, None, :]) ** 2).mean(axis=2))

    merit = np.minimum(distance(local), 0.45) + np.minimum(distance(background), 0.25)
    colour = candidates[np.arange(count), np.argmax(merit, axis=1)].astype(np.float32)
    opacity = np.asarray(rng.uniform(alpha[0], alpha[1], size=count), dtype=np.float32)
    noise = texture * rng.standard_normal(len(values)).astype(np.float32)
    return values + opacity[owner, None] * (colour[owner] + noise[:, None] - values)


def _paint_chunk(
    rng: np.random.Generator,
    images: np.ndarray,
    kinds: np.ndarray,
    targets: np.ndarray,
    low: float,
    max_object_share: float,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Draw one defect for each of ``images`` ``(m, C, H, W)`` (floats in [0, 1]).

    Returns the defects' pixels as ``(image, row, column)`` index arrays and
    their new values ``(P, C)`` in [0, 1]; ``kinds`` is updated in place
    where an erase became a blob (see :func:`paint_defects`).
    """
    m, channels, height, width = images.shape
    pixels = height * width
    background, spread = _backgrounds(images)
    foreground = _foregrounds(images, background, spread)
    cap = np.floor(max_object_share * foreground.sum(axis=(1, 2))).astype(np.intp)
    floor = int(np.ceil(low * pixels))
    counts = np.rint(targets * pixels).astype(np.intp)
    erase_counts = np.minimum(counts, cap)
    kinds[(kinds == "erase") & (erase_counts < max(1, floor // 2))] = "blob"
    counts = np.where(
        kinds == "erase", erase_counts, np.maximum(1, np.minimum(counts, np.maximum(floor, cap)))
    )
    # An image with no object visible gets its blob or scratch anywhere.
    foreground[~foreground.any(axis=(1, 2))] = True
    regions = np.zeros((m, height, width), dtype=bool)
    for kind, interior in (("erase", False), ("blob", True)):
        rows = np.flatnonzero(kinds == kind)
        if len(rows):
            regions[rows] = _irregular_regions(
                rng, foreground[rows], counts[rows], interior=interior, spill=kind == "blob"
            )
    rows = np.flatnonzero(kinds == "scratch")
    if len(rows):
        allowed = foreground[rows]
        for j in np.flatnonzero(allowed.sum(axis=(1, 2)) < 2 * counts[rows]):
            # An object too small for the scratch: let it run onto the pixels around it.
            while allowed[j].sum() < 2 * counts[rows[j]]:
                allowed[j] = ndimage.binary_dilation(allowed[j])
        regions[rows] = _scratch_regions(rng, allowed, counts[rows])

    owner, row, col = np.nonzero(regions)
    values = images[owner, :, row, col]
    kind_of = kinds[owner]
    erase = kind_of == "erase"
    values[erase] = background[owner[erase]] + spread[owner[erase]] * rng.standard_normal(
        (int(erase.sum()), channels)
    ).astype(np.float32)
    looks: tuple[tuple[str, float | None, tuple[float, float], float], ...] = (
        ("blob", None, (0.8, 1.0), 0.03),
        ("scratch", 0.05, (0.85, 1.0), 0.0),
    )
    for kind, chroma, alpha, texture in looks:
        chosen = kind_of == kind
        values[chosen] = _colour_values(
            rng, values[chosen], owner[chosen], background, chroma, alpha, texture
        )
    return (owner, row, col), np.clip(values, 0.0, 1.0)


def paint_defects(
    views: Mapping[str, Any] | MultiViewDataset,
    *,
    kinds: str | Sequence[str] = DEFECT_KINDS,
    area: tuple[float, float] = (0.03, 0.08),
    seed: int | np.random.Generator = 0,
    view_names: Sequence[str] | None = None,
    max_object_share: float = 0.4,
) -> DefectBatch:
    """Paint one synthetic local defect per sample into one random image view.

    For each sample, a view is drawn uniformly from ``view_names`` and a kind
    uniformly from ``kinds``; the defect covers a fraction of the image drawn
    uniformly from ``area`` and lies on the object (the pixels that differ
    clearly from the median colour of the image border).

    Parameters
    ----------
    views : mapping of str to numpy.ndarray, or MultiViewDataset
        Image views ``(n, C, H, W)`` or ``(n, H, W)``, channels first: uint8
        (0-255), other integers (their observed range) or floats (in [0, 1],
        or wider where the data are); vector views ``(n, d)`` are copied
        unchanged. The input is not modified.
    kinds : str or sequence of str, default :data:`DEFECT_KINDS`
        The kinds to draw from: ``"blob"`` (a stain of contrasting colour),
        ``"scratch"`` (thin contrasting strokes) and ``"erase"`` (part of the
        object replaced by background).
    area : (float, float), default (0.03, 0.08)
        Bounds on the defect's area as a fraction of the image,
        ``0 < low <= high <= 0.5``.
    seed : int or numpy.random.Generator, default 0
        Randomness; a fixed int gives the same defects every time.
    view_names : sequence of str, optional
        The image views a defect may go into; default all image views.
    max_object_share : float, default 0.4
        Largest share of the object's pixels one defect may cover, so that a
        defect on a small object stays local (see Notes).

    Returns
    -------
    DefectBatch
        Painted copies of the views, the masks, and each sample's defect view
        and kind.

    Raises
    ------
    ValueError
        For an unknown kind (with a suggestion), bad area bounds or
        ``max_object_share``, no image view, a ``view_names`` entry that is
        missing or a vector view, views of different lengths, a channels-last
        image view, or NaN or infinite values in an image view.
    TypeError
        For a bool image view or a bad view name.

    Notes
    -----
    The mask is the defect's region restricted to the pixels whose values
    actually changed. The object is estimated per image as the pixels that
    differ from the border median by more than 8% of the intensity range
    (or four times the border's robust spread, if larger).

    On a small object the area drawn is lowered to ``max_object_share`` of
    the object's pixels, but a blob or scratch keeps at least ``area[0]``,
    spilling onto the pixels around an object smaller than that (an image
    with no object visible gets it anywhere). A scratch may still fall short
    where twelve strokes cannot cover its area. An erase only removes object
    pixels; where it could remove less than ``area[0] / 2`` of the image, a
    blob is drawn instead, and :attr:`DefectBatch.kind` says so.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((4, 1, 32, 32), np.uint8)
    >>> images[:, :, 8:24, 8:24] = 200  # a bright square object on black
    >>> batch = paint_defects({"top": images, "side": images, "size": np.ones((4, 2))}, seed=1)
    >>> batch.view_names, batch.masks["top"].shape
    (('top', 'side'), (4, 32, 32))
    >>> changed = (batch.views["top"] != images)[:, 0] | (batch.views["side"] != images)[:, 0]
    >>> bool(np.array_equal(changed, batch.masks["top"] | batch.masks["side"]))
    True
    >>> areas = (batch.masks["top"] | batch.masks["side"]).mean(axis=(1, 2))
    >>> bool(((areas >= 0.03) & (areas <= 0.08)).all())
    True
    """
    source = getattr(views, "views", views)
    if not isinstance(source, Mapping) or not source:
        raise ValueError("views must be a non-empty dict {view_name: array} or a MultiViewDataset")
    arrays = {
        name: check_view(name, value, channels_last=False, finite=False) for name, value in source.items()
    }
    n = check_sample_counts(arrays)
    chosen_kinds = _check_kinds(kinds)
    low, high = _check_area(area)
    names = _image_views(arrays, view_names)
    if not 0.0 < float(max_object_share) <= 1.0:
        raise ValueError(f"max_object_share must be in (0, 1], got {max_object_share!r}")
    ranges = {name: _value_range(name, arrays[name]) for name in names}
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    defect_view = rng.integers(len(names), size=n)
    kind = np.array(chosen_kinds, dtype=_KIND_DTYPE)[rng.integers(len(chosen_kinds), size=n)]
    target = rng.uniform(low, high, size=n)
    out = {name: np.array(np.asarray(source[name]), copy=True) for name in source}
    masks: dict[str, np.ndarray] = {}
    for index, name in enumerate(names):
        array = arrays[name]
        painted_view = out[name].reshape(array.shape)
        masks[name] = np.zeros((n, array.shape[2], array.shape[3]), dtype=bool)
        lo, hi = ranges[name]
        for start in range(0, n, _CHUNK):
            rows = start + np.flatnonzero(defect_view[start : start + _CHUNK] == index)
            if len(rows) == 0:
                continue
            images = (array[rows].astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
            chunk_kinds = kind[rows]
            (owner, row, col), values = _paint_chunk(
                rng, images, chunk_kinds, target[rows], low, float(max_object_share)
            )
            kind[rows] = chunk_kinds
            values = values * np.float32(hi - lo) + np.float32(lo)
            if np.issubdtype(array.dtype, np.integer):
                values = np.rint(values)
            values = values.astype(array.dtype)
            # Only the defect's pixels are written; the mask keeps those whose value changed.
            sample = rows[owner]
            changed = (values != array[sample, :, row, col]).any(axis=1)
            painted_view[sample, :, row, col] = values
            masks[name][sample[changed], row[changed], col[changed]] = True
    return DefectBatch(views=out, masks=masks, defect_view=defect_view, kind=kind, view_names=names)


def defect_dataset(
    dataset: MultiViewDataset,
    *,
    kinds: str | Sequence[str] = DEFECT_KINDS,
    area: tuple[float, float] = (0.03, 0.08),
    seed: int | np.random.Generator = 0,
    view_names: Sequence[str] | None = None,
    max_object_share: float = 0.4,
    suffix: str = "#defect",
) -> tuple[MultiViewDataset, DefectBatch]:
    """Return a copy of ``dataset`` with one defect per sample, and the defects.

    Parameters
    ----------
    dataset : MultiViewDataset
        Normal samples.
    kinds, area, seed, view_names, max_object_share
        As for :func:`paint_defects`.
    suffix : str, default "#defect"
        Appended to every id, so the copy can be concatenated with the
        originals and ids stay unique.

    Returns
    -------
    MultiViewDataset
        The painted samples with the same labels and groups, ids with
        ``suffix``, metadata plus ``"defect_view"`` (view name) and
        ``"defect_kind"``, and ``masks``: for each view defects were painted
        into, the painted defects (with the input's known defects of that
        view added); other views keep the input's masks. The copy has no
        ``paths`` or ``mask_paths``: its pixels come from no file.
    DefectBatch
        The masks and details, as from :func:`paint_defects`.

    Raises
    ------
    ValueError, TypeError
        As for :func:`paint_defects`.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((3, 1, 16, 16), np.uint8)
    >>> images[:, :, 4:12, 4:12] = 180
    >>> normal = MultiViewDataset({"a": images, "b": images}, labels=[0, 0, 1])
    >>> broken, batch = defect_dataset(normal, kinds="erase", seed=0)
    >>> broken.ids.tolist()
    ['0#defect', '1#defect', '2#defect']
    >>> sorted(broken.metadata), set(broken.metadata["defect_kind"].tolist())
    (['defect_kind', 'defect_view'], {'erase'})
    >>> bool((broken.masks["a"] | broken.masks["b"]).any(axis=(1, 2)).all())
    True
    """
    batch = paint_defects(
        dataset, kinds=kinds, area=area, seed=seed, view_names=view_names, max_object_share=max_object_share
    )
    metadata = dict(dataset.metadata)
    metadata["defect_view"] = batch.defect_view_names
    metadata["defect_kind"] = batch.kind.copy()
    masks = dict(dataset.masks)
    for name, mask in batch.masks.items():
        masks[name] = mask | masks[name] if name in masks else mask
    painted = MultiViewDataset(
        batch.views,
        labels=None if dataset.labels is None else dataset.labels.copy(),
        ids=np.char.add(dataset.ids.astype(str), suffix),
        groups=None if dataset.groups is None else dataset.groups.copy(),
        metadata=metadata,
        masks=masks,
    )
    return painted, batch
