"""Where a model looks: pixel metrics of its anomaly maps against ground-truth masks, chunk by chunk.

:class:`PixelEvaluation` gathers, for each scored chunk of a source, the
anomaly maps of every image view the data has masks for, with the masks and
the labels, then reports pixel ROC AUC and AUPRO
(:mod:`mmocc.evaluation.pixel_metrics`) per view, per defect type and
overall, at one of two resolutions (:data:`RESOLUTIONS`):

- ``"loaded"`` (the default): maps and masks are compared at the
  resolution the model reads the view, masks resized to it keeping every
  defect cell (:func:`mmocc.data.images.resize_mask`). A one-pixel defect
  becomes a whole cell there, so the metrics are optimistic about tiny
  defects;
- ``"source"``: each map is brought back to its image's original size
  (:func:`mmocc.data.images.map_to_source`, under the ``resize`` mode the
  data was loaded with; only the image file's header is read) and compared
  with the original mask file at full resolution (nonzero = defect). Images
  of different sizes are counted one at a time
  (:func:`mmocc.evaluation.pixel_metrics.pixel_metrics_by_type_ragged`),
  the masks read again from their files, so memory does not grow with the
  images' size. Pixels whose value is unknown, those ``resize="crop"`` cut
  away before the model saw them, count in neither class: each image and
  its mask are cut to the rectangle the model saw, a defect region partly
  outside counts with its visible part, one wholly outside not at all (as
  at the loaded resolution).

``mmocc evaluate`` uses it when the model gives anomaly maps and the data
has masks (``--pixel-resolution``).

It also says whether ``threshold_`` suits the data: :func:`threshold_note`
warns when it flags more than twice ``contamination`` of the normal samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest

from mmocc.data.images import DEFAULT_RESIZE, RESIZE_MODES, map_to_source, oriented_size, read_mask
from mmocc.evaluation.pixel_metrics import pixel_metrics_by_type, pixel_metrics_by_type_ragged

ALL_VIEWS = "all views"
"""Key of the metrics over every view's pixels pooled (when loaded, only if the views share one size)."""

RESOLUTIONS = ("loaded", "source")
"""Where :class:`PixelEvaluation` compares maps and masks: as loaded, or at each source image's size."""

_Entry = tuple[np.ndarray, str, str, Any]
"""One image at the source resolution: its map as loaded, image file, mask file ("" for none), label."""


class _SourceImages:
    """Masks and maps of some images at their source size, each computed when asked for.

    :meth:`pair` keeps the last image it computed, so that the masks and
    the maps of one image (``masks[i]`` then ``maps[i]``) are computed once.
    """

    def __init__(self, entries: list[_Entry], resize: str) -> None:
        self._entries, self._resize = entries, resize
        self._last: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None
        self.masks, self.maps = _Column(self, 0), _Column(self, 1)

    def __len__(self) -> int:
        return len(self._entries)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return image ``index``'s full-resolution mask and map, both cut to the pixels the model saw."""
        if self._last is None or self._last[0] != index:
            self._last = index, self._compute(index)
        return self._last[1]

    def _compute(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        loaded, image_file, mask_file, _ = self._entries[index]
        width, height = oriented_size(image_file)
        score = map_to_source(loaded, (height, width), self._resize)
        mask = read_mask(mask_file) if mask_file else np.zeros((height, width), dtype=bool)
        if mask.shape != score.shape:
            raise ValueError(
                f"the mask {mask_file} is {mask.shape[1]}x{mask.shape[0]} px but its image "
                f"{image_file} is {width}x{height} px (width x height)"
            )
        known = np.isfinite(score)
        rows, cols = np.flatnonzero(known.any(axis=1)), np.flatnonzero(known.any(axis=0))
        window = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        return mask[window], score[window]


class _Column:
    """The masks (``part`` 0) or the maps (1) of a :class:`_SourceImages`, as a sequence."""

    def __init__(self, images: _SourceImages, part: int) -> None:
        self._images, self._part = images, part

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self._images.pair(index)[self._part]


class PixelEvaluation:
    """Collect anomaly maps and masks of scored chunks; compute pixel metrics per view and type.

    Parameters
    ----------
    clf : fitted MultimodalOCC
        The model; it must give anomaly maps (:attr:`has_anomaly_maps`).
    resolution : {"loaded", "source"}, default "loaded"
        Compare maps and masks at the loaded resolution, or at each source
        image's size against the original mask files (see the module
        docstring; the chunks must then come from files: ``paths`` and
        ``mask_paths``).
    resize : {"stretch", "pad", "crop"}, default "stretch"
        The resize mode the data was loaded with, which ``"source"`` undoes.

    Raises
    ------
    ValueError
        For an unknown ``resolution`` or ``resize``.

    Examples
    --------
    >>> from mmocc import MultimodalOCC
    >>> from mmocc.datasets import make_synthetic
    >>> from mmocc.data.defects import defect_dataset
    >>> data = make_synthetic(n_per_class=12, n_classes=2, size=16, seed=0)
    >>> clf = MultimodalOCC(preset="patch", epochs=1, filters=(8, 4, 4), random_state=0).fit(data)
    >>> bad, _ = defect_dataset(data, seed=0)
    >>> pixels = PixelEvaluation(clf)
    >>> pixels.add(bad, np.full(len(bad), "painted"))
    >>> sorted(pixels.metrics(normal="good")["dorsal"])
    ['overall', 'painted']
    """

    def __init__(self, clf: Any, *, resolution: str = "loaded", resize: str = DEFAULT_RESIZE) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.clf, self.resolution, self.resize = clf, resolution, resize
        self._maps: dict[str, list[np.ndarray]] = {}
        self._masks: dict[str, list[np.ndarray]] = {}
        self._sources: dict[str, list[_Entry]] = {}
        self._labels: dict[str, list[np.ndarray]] = {}

    def add(self, chunk: Any, labels: np.ndarray) -> None:
        """Add a scored chunk: the maps of its views that have masks, their masks and the labels.

        Parameters
        ----------
        chunk : MultiViewDataset
            Samples with ``masks`` for some image views (others are skipped).
        labels : numpy.ndarray of shape (n,)
            Each sample's label (normal label or defect type).

        Raises
        ------
        ValueError
            With ``resolution="source"``, for a view whose masks were not
            read from files (no ``paths`` or ``mask_paths``).
        """
        masks = getattr(chunk, "masks", None) or {}
        if not masks:
            return
        maps = self.clf.anomaly_maps(chunk)
        for view, mask in masks.items():
            if view not in maps:
                continue
            if self.resolution == "source":
                images, mask_files = _source_files(chunk, view)
                entries = zip(maps[view].astype(np.float32), images, mask_files, list(labels), strict=True)
                self._sources.setdefault(view, []).extend(entries)
                continue
            self._maps.setdefault(view, []).append(maps[view].astype(np.float32))
            self._masks.setdefault(view, []).append(np.asarray(mask, dtype=bool))
            self._labels.setdefault(view, []).append(np.asarray(labels))

    @property
    def views(self) -> list[str]:
        """The views with maps and masks collected so far."""
        return [*self._maps, *self._sources]

    def metrics(self, normal: Any) -> dict[str, dict[str, dict[str, float]]]:
        """Pixel ROC AUC and AUPRO per view (and over all views pooled), per defect type and overall.

        Parameters
        ----------
        normal : label or list of labels
            The normal label(s); every other label is a defect type.

        Returns
        -------
        dict
            ``{view: {type: {"pixel_roc_auc", "aupro", "n_images", "n_regions"}}}``
            with an ``"overall"`` type, plus :data:`ALL_VIEWS` when there are
            several views (at the loaded resolution: several of one size).
            Empty when nothing was collected.

        Raises
        ------
        ValueError
            When the collected masks hold no defect pixel, or no defect-free
            one; at the source resolution, also for a mask file whose size
            differs from its image's.
        """
        if self.resolution == "source":
            return self._source_metrics(normal)
        out: dict[str, dict[str, dict[str, float]]] = {}
        stacked = {}
        for view in self._maps:
            maps, masks = np.concatenate(self._maps[view]), np.concatenate(self._masks[view])
            labels = np.concatenate(self._labels[view])
            stacked[view] = (masks, maps, labels)
            out[view] = pixel_metrics_by_type(masks, maps, labels, normal=normal)
        shapes = {value[0].shape[1:] for value in stacked.values()}
        if len(stacked) > 1 and len(shapes) == 1:
            masks, maps, labels = (np.concatenate([value[i] for value in stacked.values()]) for i in range(3))
            out[ALL_VIEWS] = pixel_metrics_by_type(masks, maps, labels, normal=normal)
        return out

    def _source_metrics(self, normal: Any) -> dict[str, dict[str, dict[str, float]]]:
        """Compute the metrics at each source image's size, one image at a time."""
        parts = dict(self._sources)
        if len(parts) > 1:
            parts[ALL_VIEWS] = [entry for entries in self._sources.values() for entry in entries]
        out = {}
        for view, entries in parts.items():
            pairs = _SourceImages(entries, self.resize)
            labels = [entry[3] for entry in entries]
            out[view] = pixel_metrics_by_type_ragged(pairs.masks, pairs.maps, labels, normal=normal)
        return out


def _source_files(chunk: Any, view: str) -> tuple[list[str], list[str]]:
    """Return the image and mask files of a chunk's view, or say why the source resolution cannot be had."""
    images = (getattr(chunk, "paths", None) or {}).get(view)
    masks = (getattr(chunk, "mask_paths", None) or {}).get(view)
    if images is None or masks is None:
        raise ValueError(
            f"view {view!r}: its masks were not read from files, so there is no source resolution to "
            "compare at: evaluate at the loaded resolution (resolution='loaded', --pixel-resolution loaded)"
        )
    return [str(path) for path in images], [str(path) for path in masks]


def threshold_note(scores: np.ndarray, y: np.ndarray, threshold: float, contamination: float) -> str | None:
    """Say when ``threshold`` flags more than twice ``contamination`` of the normal samples, and the fix.

    A few normals give noisy shares (one of six is 17%), so the note also
    needs the count flagged to be unlikely under ``contamination``: a
    one-sided binomial test at the 1% level.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Anomaly scores.
    y : numpy.ndarray of shape (n,)
        0 normal, 1 anomaly.
    threshold : float
        The model's ``threshold_``.
    contamination : float
        The share of normals the threshold was meant to flag.

    Returns
    -------
    str or None
        A warning, or None when the share flagged is at most twice ``contamination``.

    Examples
    --------
    >>> y = np.r_[np.zeros(20), 1]
    >>> threshold_note(np.r_[np.arange(20.0), 99.0], y, 9.5, 0.05)[:44]
    'warning: tau flags 50% of the 20 held-out no'
    >>> threshold_note(np.r_[np.arange(20.0), 99.0], y, 18.5, 0.05) is None  # one of 20: as promised
    True
    """
    normal = scores[y == 0]
    if not len(normal):
        return None
    count = int((normal > threshold).sum())
    flagged = count / len(normal)
    if flagged <= 2 * contamination or binomtest(count, len(normal), contamination, "greater").pvalue >= 0.01:
        return None
    return (
        f"warning: tau flags {flagged:.0%} of the {len(normal)} held-out normal samples, not the "
        f"{contamination:.0%} it was set for: new normals differ from the training ones. Set tau from "
        "normals like these: mmocc train --holdout 0.2 -p threshold=holdout (whole groups are held out "
        "when the data has groups), or calibrate(normals) from Python"
    )
