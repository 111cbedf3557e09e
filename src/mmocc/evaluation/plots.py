"""Figures of an experiment, drawn with matplotlib's object API and the Agg renderer.

The figures never touch :mod:`matplotlib.pyplot`, so drawing them changes no
global backend state. Three kinds are written, each atomically:

- ``roc_size{S}_normal-{C}.png``: ROC curves of every model for one task
  (one curve per seed, the legend giving the mean ROC AUC);
- ``hist_size{S}_{model}.png``: per task, histograms of the test scores of
  normals and anomalies with the threshold marked (the first seed);
- ``loss_size{S}_{model}.png``: training curves of each loss term, one line
  per task and seed, coloured by normal class (models with a training
  history only).

:func:`roc_figure`, :func:`histogram_figure` and :func:`loss_figure` return
the figures without saving them.

matplotlib is an optional dependency (``pip install "mmocc[plots]"``),
imported only when a figure is drawn; :func:`require_matplotlib` fails early
with an installation hint when it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from mmocc.utils.files import atomic_open
from mmocc.utils.text import safe_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mmocc.evaluation.runs import RunKey, RunRecord

_LOSS_TERMS = ("loss", "compactness", "reconstruction", "diversity")
_MAX_LEGEND = 10
_LEGEND_ROWS = 25
_LOG_SPAN = 20.0
_INSTALL_HINT = (
    'drawing figures needs matplotlib, which is not installed: pip install "mmocc[plots]" '
    "(or pass plots = false in the config, --no-plots on the command line)"
)


class MatplotlibMissingError(ImportError):
    """Figures were requested but matplotlib is not installed; the message says how to fix it."""


def require_matplotlib() -> ModuleType:
    """Import matplotlib, or fail with an installation hint.

    Returns
    -------
    module
        :mod:`matplotlib`, with :mod:`matplotlib.figure` and
        :mod:`matplotlib.ticker` imported.

    Raises
    ------
    MatplotlibMissingError
        If matplotlib cannot be imported; the message names
        ``pip install "mmocc[plots]"`` and how to turn figures off.
    """
    try:
        import matplotlib
        import matplotlib.figure
        import matplotlib.ticker
    except ImportError as exc:
        raise MatplotlibMissingError(_INSTALL_HINT, name="matplotlib") from exc
    return matplotlib


def _figure(**kwargs: Any) -> Figure:
    """Create a matplotlib figure (object API, no pyplot state, constrained layout)."""
    return require_matplotlib().figure.Figure(layout="constrained", **kwargs)


def _save(fig: Figure, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)


def _grid(n: int) -> tuple[int, int]:
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def _size_tag(size: int | None) -> str:
    return "NA" if size is None else str(size)


def _colors(n: int) -> list[Any]:
    """Return ``n`` distinguishable colours: the default cycle, then tab20, then viridis."""
    if n <= _MAX_LEGEND:
        return [f"C{i}" for i in range(n)]
    colormaps = require_matplotlib().colormaps
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 1.0, n)]


def roc_figure(title: str, curves: Mapping[str, list[tuple[np.ndarray, np.ndarray, float]]]) -> Figure:
    """Draw ROC curves of several models on one task.

    Parameters
    ----------
    title : str
        Figure title.
    curves : mapping of str to list of (y_test, scores, roc_auc)
        Per model, one entry per seed.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a curve per model and seed, the chance diagonal, and a legend
        giving each model's mean ROC AUC.
    """
    from sklearn.metrics import roc_curve

    fig = _figure(figsize=(5.5, 5))
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(10)]
    for i, (model, runs) in enumerate(curves.items()):
        for j, (y, scores, _) in enumerate(runs):
            fpr, tpr, _ = roc_curve(y, scores)
            mean_auc = np.mean([auc for _, _, auc in runs])
            label = f"{model} (AUC {mean_auc:.3f})" if j == 0 else None
            ax.plot(fpr, tpr, color=colors[i % 10], alpha=0.8 if len(runs) == 1 else 0.5, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01)
    )
    ax.legend(loc="lower right", fontsize="small")
    return fig


def histogram_figure(title: str, panels: list[tuple[str, np.ndarray, np.ndarray, float]]) -> Figure:
    """Draw, per task, the score histograms of test normals and anomalies.

    Parameters
    ----------
    title : str
        Figure title.
    panels : list of (task label, y_test, scores, threshold)
        One panel each.

    Returns
    -------
    matplotlib.figure.Figure
        A grid of panels (x: anomaly score, y: density) with the threshold
        marked; the first panel holds the legend.
    """
    rows, cols = _grid(len(panels))
    fig = _figure(figsize=(3.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (label, y, scores, threshold) in zip(axes, panels, strict=False):
        bins = np.histogram_bin_edges(np.append(scores, threshold), bins=30)
        ax.hist(scores[y == 0], bins=bins, alpha=0.6, density=True, label="normal", color="C0")
        ax.hist(scores[y == 1], bins=bins, alpha=0.6, density=True, label="anomaly", color="C3")
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
        ax.set_title(f"normal = {label}", fontsize="small")
        ax.set_xlabel("anomaly score", fontsize="x-small")
        ax.set_ylabel("density", fontsize="x-small")
        ax.tick_params(labelsize="x-small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="x-small")
    fig.suptitle(title)
    return fig


def _loss_terms(histories: list[tuple[str, list[dict[str, float]]]]) -> list[str]:
    """Return the loss terms that are recorded and not always zero, in :data:`_LOSS_TERMS` order."""
    return [
        term
        for term in _LOSS_TERMS
        if any(term in epoch and epoch[term] != 0 for _, history in histories for epoch in history)
    ]


def loss_figure(title: str, histories: list[tuple[str, list[dict[str, float]]]]) -> Figure:
    """Draw the training curve of each loss term.

    Parameters
    ----------
    title : str
        Figure title.
    histories : list of (line label, history)
        One training history (a list of per-epoch dicts) per line; lines
        with the same label (the seeds of one task) share a colour.

    Returns
    -------
    matplotlib.figure.Figure
        A panel per loss term (x: epoch, y: loss, log-scaled when it spans
        more than a factor of 20) and a legend of the line labels: in the
        first panel for up to ten labels, beside the panels for more.
    """
    terms = _loss_terms(histories)
    labels = list(dict.fromkeys(label for label, _ in histories))
    columns = int(np.ceil(len(labels) / _LEGEND_ROWS))
    height = 3.2 if len(labels) <= _MAX_LEGEND else max(3.2, 0.8 + 0.16 * np.ceil(len(labels) / columns))
    fig = _figure(figsize=(3.6 * len(terms), height))
    axes = fig.subplots(1, len(terms), squeeze=False).ravel()
    colors = dict(zip(labels, _colors(len(labels)), strict=True))
    for ax, term in zip(axes, terms, strict=True):
        shown = set()
        for label, history in histories:
            epochs = [epoch["epoch"] for epoch in history]
            values = [epoch[term] for epoch in history]
            legend = None if label in shown else label
            shown.add(label)
            ax.plot(epochs, values, color=colors[label], alpha=0.7, linewidth=1, marker=".", label=legend)
        every = np.asarray([epoch[term] for _, history in histories for epoch in history])
        log = every.min() > 0 and every.max() > _LOG_SPAN * every.min()
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(require_matplotlib().ticker.MaxNLocator(integer=True))
        ax.set(title=term, xlabel="epoch", ylabel="loss (log scale)" if log else "loss")
    legend_title = "normal" + (", a line per seed" if len(histories) > len(labels) else "")
    if len(labels) <= _MAX_LEGEND:
        axes[0].legend(title=legend_title, fontsize="x-small", title_fontsize="x-small")
    else:
        fig.legend(
            *axes[0].get_legend_handles_labels(),
            loc="outside right upper",
            title=legend_title,
            fontsize="x-small",
            title_fontsize="x-small",
            ncols=columns,
        )
    fig.suptitle(title)
    return fig


def write_plots(
    folder: Path,
    records: list[tuple[RunKey, RunRecord]],
    normals_by_size: Mapping[int | None, list[Any]],
    models: list[str],
) -> list[Path]:
    """Write every figure of an experiment.

    Parameters
    ----------
    folder : pathlib.Path
        Where the PNG files go.
    records : list of (RunKey, RunRecord)
        The finished runs.
    normals_by_size : mapping
        The normal classes of each size, in order.
    models : list of str
        Model names, in order.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    MatplotlibMissingError
        If matplotlib is not installed.
    """
    require_matplotlib()
    by_key = {(key.size, str(key.normal), key.model, key.seed): record for key, record in records}
    seeds = sorted({key.seed for key, _ in records})
    written: list[Path] = []
    for size, normals in normals_by_size.items():
        written += _write_size(folder, by_key, size, [str(normal) for normal in normals], models, seeds)
    return written


def _write_size(
    folder: Path,
    by_key: Mapping[tuple[Any, ...], RunRecord],
    size: int | None,
    normals: list[str],
    models: list[str],
    seeds: list[int],
) -> list[Path]:
    """Write the ROC figure of each task and the histogram and loss figures of each model at one size."""
    tag = _size_tag(size)
    written = []
    for normal in normals:
        curves = {
            model: [
                (r.y_test, r.scores, r.info["metrics"]["roc_auc"])
                for seed in seeds
                if (r := by_key.get((size, normal, model, seed))) is not None
            ]
            for model in models
        }
        path = folder / f"roc_size{tag}_normal-{safe_name(normal)}.png"
        _save(roc_figure(f"ROC, normal = {normal}, size {tag}", curves), path)
        written.append(path)
    for model in models:
        first = [(normal, by_key[size, normal, model, seeds[0]]) for normal in normals]
        path = folder / f"hist_size{tag}_{model}.png"
        panels = [(normal, r.y_test, r.scores, r.info["threshold"]) for normal, r in first]
        _save(histogram_figure(f"{model}: test scores (seed {seeds[0]}, size {tag})", panels), path)
        written.append(path)
        histories = [
            (normal, by_key[size, normal, model, seed].info["history"])
            for normal in normals
            for seed in seeds
        ]
        if any(history for _, history in histories):
            path = folder / f"loss_size{tag}_{model}.png"
            _save(loss_figure(f"{model}: training loss (size {tag})", histories), path)
            written.append(path)
    return written
