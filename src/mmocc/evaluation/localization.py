"""Where a model looks: pixel metrics of its anomaly maps against ground-truth masks, chunk by chunk.

:class:`PixelEvaluation` gathers, for each scored chunk of a source, the
anomaly maps of every image view the data has masks for, with the masks and
the labels, then reports pixel ROC AUC and AUPRO
(:mod:`mmocc.evaluation.pixel_metrics`) per view, per defect type and
overall. Maps and masks are compared at the resolution the model reads the
view (masks are resized to it keeping every defect cell, see
:func:`mmocc.data.images.resize_mask`). ``mmocc evaluate`` uses it when the
model gives anomaly maps and the data has masks.

It also says whether ``threshold_`` suits the data: :func:`threshold_note`
warns when it flags more than twice ``contamination`` of the normal samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest

from mmocc.evaluation.pixel_metrics import pixel_metrics_by_type

ALL_VIEWS = "all views"
"""Key of the metrics over every view's pixels pooled (when the views share one size)."""


class PixelEvaluation:
    """Collect anomaly maps and masks of scored chunks; compute pixel metrics per view and type.

    Parameters
    ----------
    clf : fitted MultimodalOCC
        The model; it must give anomaly maps (:attr:`has_anomaly_maps`).

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

    def __init__(self, clf: Any) -> None:
        self.clf = clf
        self._maps: dict[str, list[np.ndarray]] = {}
        self._masks: dict[str, list[np.ndarray]] = {}
        self._labels: dict[str, list[np.ndarray]] = {}

    def add(self, chunk: Any, labels: np.ndarray) -> None:
        """Add a scored chunk: the maps of its views that have masks, their masks and the labels.

        Parameters
        ----------
        chunk : MultiViewDataset
            Samples with ``masks`` for some image views (others are skipped).
        labels : numpy.ndarray of shape (n,)
            Each sample's label (normal label or defect type).
        """
        masks = getattr(chunk, "masks", None) or {}
        if not masks:
            return
        maps = self.clf.anomaly_maps(chunk)
        for view, mask in masks.items():
            if view not in maps:
                continue
            self._maps.setdefault(view, []).append(maps[view].astype(np.float32))
            self._masks.setdefault(view, []).append(np.asarray(mask, dtype=bool))
            self._labels.setdefault(view, []).append(np.asarray(labels))

    @property
    def views(self) -> list[str]:
        """The views with maps and masks collected so far."""
        return list(self._maps)

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
            several views of one size. Empty when nothing was collected.

        Raises
        ------
        ValueError
            When the collected masks hold no defect pixel, or no defect-free one.
        """
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
