"""The measurements behind REAL.md: one row of models on one split of Magnetic-tile.

A *row* is a plain dict (see :data:`ROW_KEYS`): ``preset`` (a
:class:`mmocc.MultimodalOCC` preset) or ``detector`` (a
:class:`mmocc.BaselineOCC` detector on the pixels), the loaded ``size`` and
``resize`` mode, optionally the ``protocols`` and ``seeds`` it runs on and
``singles`` (also fit one model per lighting in the six-lighting protocol);
every other key is a parameter of the estimator (``tile_size``,
``coreset_ratio``, ...). A ``pretrained`` backbone's ``patch_size`` follows
``size`` unless the row sets it.

The *protocols* (:data:`PROTOCOLS`):

- ``image_random``: one image at a time (``mtile`` with ``per_image=True``),
  80% of the defect-free images drawn at random train (DifferNet's protocol;
  the other lightings of a training image's tile may be in the test set);
- ``image_group``: the same, drawing 80% of the defect-free *tiles* (all
  images of a tile on one side);
- ``tiles``: six-lighting tiles (views ``light1`` ... ``light6``), 66% of the
  defect-free tiles train.

Every test set is the rest of the defect-free samples plus every defective one.
:func:`measure` fits and scores one row on one split and returns its figures;
:func:`single_lightings` fits one model per lighting and derives the per-view
baselines from them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

NORMAL = "Free"
"""The defect-free class of Magnetic-tile."""
ROW_KEYS = frozenset({"preset", "detector", "size", "resize", "protocols", "seeds", "singles"})
"""Keys of a row that are not estimator parameters."""
PROTOCOLS: dict[str, dict[str, Any]] = {
    "image_random": {"per_image": True, "split": "random", "train_fraction": 0.8},
    "image_group": {"per_image": True, "split": "group", "train_fraction": 0.8},
    "tiles": {"per_image": False, "split": "random", "train_fraction": 0.66},
}
"""Loader and split options of each protocol."""
PIXEL_FIGURES = ("pixel_roc_auc", "aupro", "pixel_roc_auc_loaded", "aupro_loaded")
"""The pixel figures of a row with maps: at the source resolution, then at the loaded size."""
SMOKE_NORMALS = 24
"""Defect-free samples kept by ``--smoke`` (every defective type keeps :data:`SMOKE_DEFECTS`)."""
SMOKE_DEFECTS = 3

_DATA: dict[tuple[Any, ...], Any] = {}


def resize_of(row: Mapping[str, Any]) -> str:
    """The loader's ``resize`` mode of a row (``"stretch"`` unless it says otherwise)."""
    return row.get("resize", "stretch")


def row_label(row: Mapping[str, Any]) -> str:
    """A row's name in tables: the model, the size and every knob that differs from the defaults."""
    model = f"kNN on pixels (`BaselineOCC(detector=\"{row['detector']}\")`)" if "detector" in row \
        else f"`{row['preset']}`"
    knobs = [f"resize {row['resize']}"] if resize_of(row) != "stretch" else []
    knobs += [f"{key} {value}" for key, value in row.items() if key not in ROW_KEYS]
    return " ".join([model, f"{row['size']} px", *(["(" + ", ".join(knobs) + ")"] if knobs else [])])


def model_params(row: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator parameters of a row: its own, and ``patch_size = size`` for a ``pretrained`` preset."""
    params = {key: value for key, value in row.items() if key not in ROW_KEYS}
    if row.get("preset") == "pretrained":
        params.setdefault("patch_size", row["size"])
    return params


def make_model(row: Mapping[str, Any], seed: int, views: Sequence[str] | None = None) -> Any:
    """A fresh estimator for a row (optionally on some ``views`` only), seeded, on the CPU, quiet."""
    from mmocc import BaselineOCC, MultimodalOCC

    if "detector" in row:
        return BaselineOCC(detector=row["detector"], views=views, random_state=seed, **model_params(row))
    return MultimodalOCC(preset=row["preset"], views=views, random_state=seed, device="cpu", verbose=False,
                         **model_params(row))


def unsupported(row: Mapping[str, Any]) -> list[str]:
    """The row's estimator parameters that the installed estimator does not have (the row is skipped)."""
    known = make_model({k: v for k, v in row.items() if k in ROW_KEYS}, 0).get_params()
    return sorted(set(model_params(row)) - set(known))


def smoke_subset(data: Any) -> Any:
    """At most :data:`SMOKE_NORMALS` defect-free samples and :data:`SMOKE_DEFECTS` of each defect type."""
    keep = []
    for label in data.classes:
        where = np.flatnonzero(data.labels == label)
        n = SMOKE_NORMALS if label == NORMAL else SMOKE_DEFECTS
        keep += where[np.linspace(0, len(where) - 1, min(n, len(where))).round().astype(int)].tolist()
    return data.subset(np.unique(keep))


def load(root: Path, protocol: str, size: int, resize: str, smoke: bool) -> Any:
    """Magnetic-tile as a protocol reads it (cached per process); ``smoke`` keeps :func:`smoke_subset`."""
    import warnings

    from mmocc.datasets import load_mtile

    key = (str(root), PROTOCOLS[protocol]["per_image"], size, resize, smoke)
    if key not in _DATA:
        with warnings.catch_warnings():  # the source's count of dropped runs, which REAL.md describes
            warnings.simplefilter("ignore", UserWarning)
            data = load_mtile(root, per_image=key[1], size=size, resize=resize)
        _DATA[key] = smoke_subset(data) if smoke else data
    return _DATA[key]


def draw(data: Any, protocol: str, seed: int) -> Any:
    """The one-class split of a protocol (defect-free = ``Free``) for one seed."""
    from mmocc import one_class_split

    spec = PROTOCOLS[protocol]
    return one_class_split(data, NORMAL, train_fraction=spec["train_fraction"], split=spec["split"],
                           seed=seed)


def image_figures(y: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Image ROC AUC over the test set and per defect type (that type's samples against every normal)."""
    from mmocc.metrics import roc_auc

    types = {str(t): roc_auc(y[(labels == t) | (y == 0)], scores[(labels == t) | (y == 0)])
             for t in np.unique(labels[y == 1])}
    return {"image_roc_auc": float(roc_auc(y, scores)), "types": {t: {"image_roc_auc": float(v)}
                                                                   for t, v in types.items()}}


POOLED = "pooled"
"""The one view every view's images are put in, so pixel metrics are computed once, over all of them."""


class _Given:
    """A fitted model's stand-in for :class:`~mmocc.evaluation.localization.PixelEvaluation`: given maps."""

    def __init__(self, maps: Mapping[str, np.ndarray]) -> None:
        self.maps = maps

    def anomaly_maps(self, _: Any) -> Mapping[str, np.ndarray]:
        """The maps of the test set (the only chunk added)."""
        return self.maps


def _pooled(test: Any, maps: Mapping[str, np.ndarray]) -> tuple[SimpleNamespace, dict[str, np.ndarray]]:
    """The test set's views as one :data:`POOLED` view (masks, image and mask files), and their maps alike."""
    views = list(maps)
    chunk = SimpleNamespace(**{
        part: {POOLED: np.concatenate([np.asarray(getattr(test, part)[v]) for v in views])}
        for part in ("masks", "paths", "mask_paths")
    })
    return chunk, {POOLED: np.concatenate([maps[v] for v in views])}


def pixel_figures(test: Any, maps: Mapping[str, np.ndarray], labels: np.ndarray, resize: str,
                  source: bool) -> dict[str, Any]:
    """Pixel ROC AUC and AUPRO, overall and per type, every view's maps pooled.

    At the loaded size (masks resized keeping every defect pixel:
    ``pixel_roc_auc_loaded``, ``aupro_loaded``) and with ``source`` also at
    the source resolution (each map brought back to its image's size under
    ``resize`` and compared with the original mask file: ``pixel_roc_auc``,
    ``aupro``; about 0.1 s per image).
    """
    from mmocc.evaluation.localization import PixelEvaluation
    from mmocc.metrics import OVERALL

    chunk, pooled = _pooled(test, maps)
    labels = np.concatenate([labels] * len(maps))
    out: dict[str, Any] = {"types": {}}
    resolutions = (("source", ""), ("loaded", "_loaded")) if source else (("loaded", "_loaded"),)
    for resolution, suffix in resolutions:
        evaluation = PixelEvaluation(_Given(pooled), resolution=resolution, resize=resize)
        evaluation.add(chunk, labels)
        for kind, row in evaluation.metrics(NORMAL)[POOLED].items():
            target = out if kind == OVERALL else out["types"].setdefault(str(kind), {})
            target.update({f"pixel_roc_auc{suffix}": row["pixel_roc_auc"], f"aupro{suffix}": row["aupro"]})
    return out


def attribution(view_scores: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], y: np.ndarray,
                maps: Mapping[str, np.ndarray] | None) -> dict[str, float | None]:
    """Does the lighting with the highest view score show the defect, for each defective tile?

    Returns
    -------
    dict
        ``attribution``: the share of defective tiles whose top lighting's mask
        has defect pixels; ``attribution_chance``: that share for a lighting
        drawn at random (the mean share of lightings whose mask shows the
        defect); ``attribution_peak``: the share whose top lighting's map
        peaks inside its mask (None without maps).
    """
    views = list(view_scores)
    defective = np.flatnonzero(y == 1)
    top = np.asarray([views[i] for i in np.argmax(np.column_stack([view_scores[v] for v in views]), axis=1)])
    shows = {v: masks[v].reshape(len(y), -1).any(axis=1) for v in views}
    hits = [shows[top[i]][i] for i in defective]
    chance = [np.mean([shows[v][i] for v in views]) for i in defective]
    peak = None
    if maps is not None:
        peak = float(np.mean([masks[top[i]][i].ravel()[np.argmax(maps[top[i]][i])] for i in defective]))
    return {"attribution": float(np.mean(hits)), "attribution_chance": float(np.mean(chance)),
            "attribution_peak": peak}


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _score(clf: Any, test: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Scores and (where the model has them) standardized view scores, from one pass."""
    if hasattr(clf, "decision_function_by_view"):
        return clf.decision_function_by_view(test)
    return clf.decision_function(test), {}


def _maps(clf: Any, test: Any) -> dict[str, np.ndarray] | None:
    return clf.anomaly_maps(test) if getattr(clf, "has_anomaly_maps", False) else None


def figures(task: Any, scores: np.ndarray, view_scores: Mapping[str, np.ndarray],
            maps: Mapping[str, np.ndarray] | None, resize: str, source: bool = True) -> dict[str, Any]:
    """Image, pixel and (with several views) attribution figures of one scored split.

    ``source`` False leaves out the pixel metrics at the source resolution (the costly ones).
    """
    labels = np.asarray(task.test.labels).astype(str)
    out = image_figures(task.y_test, scores, labels)
    out.update(dict.fromkeys(PIXEL_FIGURES), attribution=None, attribution_chance=None, attribution_peak=None)
    masks = task.test.masks or {}
    if maps is not None and all(v in masks for v in maps):
        pixels = pixel_figures(task.test, maps, labels, resize, source)
        for kind, row in pixels.pop("types").items():
            out["types"][kind].update(row)
        out.update(pixels)
    if len(view_scores) > 1:
        out.update(attribution(view_scores, masks, task.y_test, maps))
    return out


def sizes(task: Any) -> dict[str, int]:
    """How many samples a split trains on and tests (defect-free and defective)."""
    return {"n_train": len(task.train), "n_test_normal": int(np.sum(task.y_test == 0)),
            "n_test_defective": int(np.sum(task.y_test == 1))}


def measure(row: Mapping[str, Any], task: Any, seed: int) -> dict[str, Any]:
    """Fit and score one row on one split; its figures, seconds (fit, score, maps) and normal recall.

    ``normal_recall`` is the share of the defect-free test samples at or below the model's threshold.
    """
    clf = make_model(row, seed)
    _, fit = _timed(clf.fit, task.train)
    (scores, view_scores), score = _timed(_score, clf, task.test)
    maps, map_seconds = _timed(_maps, clf, task.test)
    recall = float(np.mean(scores[task.y_test == 0] <= clf.threshold_))
    return {**figures(task, scores, view_scores, maps, resize_of(row)), "seed": seed, "fit_seconds": fit,
            "score_seconds": score, "maps_seconds": map_seconds if maps is not None else None,
            "normal_recall": recall, **sizes(task)}


def single_lightings(row: Mapping[str, Any], task: Any, seed: int) -> dict[str, Any]:
    """One model of the row per lighting; their image ROC AUC and two per-view baselines built from them.

    Returns
    -------
    dict
        ``singles``: {lighting: image ROC AUC}; ``raw`` and ``standardized``:
        the figures (as :func:`measure`, pixel metrics at the loaded size
        only) of the tile score taken as the maximum
        over the six models of their raw scores (nearest-patch distances, no
        standardisation: PatchCore per lighting) or of their standardized
        scores (lighting-specific banks, combined as the joint model combines).
    """
    raw_scores, std_scores, raw_maps, std_maps, singles = {}, {}, {}, {}, {}
    labels = np.asarray(task.test.labels).astype(str)
    fit = score = map_seconds = 0.0
    for view in task.train.view_names:
        clf = make_model(row, seed, views=[view])
        _, seconds = _timed(clf.fit, task.train)
        fit += seconds
        (z, _), seconds = _timed(_score, clf, task.test)
        score += seconds
        maps, seconds = _timed(_maps, clf, task.test)
        map_seconds += seconds
        mean, std = clf.rule_.mean[view], clf.rule_.std[view]  # the fitted rule's standardization
        singles[view] = image_figures(task.y_test, z, labels)["image_roc_auc"]
        std_scores[view], raw_scores[view] = z, z * std + mean
        if maps is not None:
            std_maps[view], raw_maps[view] = maps[view], maps[view] * std + mean
    seconds = {"seed": seed, "fit_seconds": fit, "score_seconds": score,
               "maps_seconds": map_seconds if std_maps else None, **sizes(task)}
    combined = {}
    for name, views, maps in (("raw", raw_scores, raw_maps), ("standardized", std_scores, std_maps)):
        scores = np.column_stack(list(views.values())).max(axis=1)
        scored = figures(task, scores, views, maps or None, resize_of(row), source=False)
        combined[name] = {**scored, **seconds}
    return {"singles": singles, **combined}
