"""The report page: header, sections, embedded stylesheet and script; build, render and write a report."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cache
from html import escape
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np

from mmocc import __version__
from mmocc.evaluation.html.cards import (
    Card,
    CardContext,
    cards_section,
    make_cards,
    map_ranges,
    select_cards,
)
from mmocc.evaluation.html.samples import ScoredSamples
from mmocc.evaluation.html.svg import histogram_legend, histogram_svg, label_groups
from mmocc.evaluation.html.table import samples_table
from mmocc.utils.files import atomic_open

if TYPE_CHECKING:
    from mmocc.data.dataset import MultiViewDataset
    from mmocc.detectors.multimodal import MultimodalOCC

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_SORT_NOTE = (
    '<p class="note">Click a header to sort; add #sort=KEY (or #sort=-KEY, descending) to the address '
    "to open sorted, e.g. #sort=-score.</p>"
)


@cache
def _asset(name: str) -> str:
    """Return the UTF-8 text of a file shipped in this package (``report.css``, ``report.js``), read once."""
    return files("mmocc.evaluation.html").joinpath(name).read_text(encoding="utf-8")


def _header(
    clf: MultimodalOCC, scored: ScoredSamples, model_path: str | os.PathLike[str] | None, source: str | None
) -> str:
    """Describe the model, data and threshold as a description list."""
    n = len(scored.total)
    n_above = int((scored.total > scored.threshold).sum())
    specs = clf.view_specs_
    views = ", ".join(f"{spec.name} ({spec.kind} {'×'.join(map(str, spec.shape))})" for spec in specs)
    labels = "unknown" if scored.labels is None else f"{len(np.unique(scored.labels))} classes"
    items = [
        ("model", "(in memory)" if model_path is None else os.fspath(model_path)),
        ("preset / score rule", f"{clf.preset} / {clf.params_.score}"),
        ("threshold τ", f"{scored.threshold:.6g} (from {clf.threshold_source_})"),
        ("samples", str(n)),
        ("above τ", f"{n_above} ({n_above / n:.1%})"),
        ("data", "(in memory)" if source is None else source),
        ("views", views),
        ("labels", labels),
    ]
    if scored.n_seen is not None:
        n_seen = scored.n_seen
        items.append(
            ("used in training", f"{n_seen} of these samples" + (" (optimistic scores)" if n_seen else ""))
        )
    rows = "".join(f"<dt>{escape(key)}</dt><dd>{escape(value)}</dd>" for key, value in items)
    return f'<dl class="meta">{rows}</dl>'


def _histogram(clf: MultimodalOCC, scored: ScoredSamples) -> str:
    """Return the histogram section: one colour per label group when labels are known, with its legend."""
    if scored.labels is None:
        return f"<section><h2>Score histogram</h2>{histogram_svg(scored.total, scored.threshold)}</section>"
    groups = label_groups(scored.labels, getattr(clf, "metadata_", {}).get("normal") or ())
    svg = histogram_svg(scored.total, scored.threshold, groups=groups)
    note = '<p class="note">Bars stacked by label; the dashed line is τ.</p>'
    return f"<section><h2>Score histogram</h2>{svg}{histogram_legend(groups)}{note}</section>"


def _legend_notes(ctx: CardContext, cards: Sequence[Card]) -> list[str]:
    """Explain the overlays of the cards: the heat map's colours and the mask outlines, where shown."""
    notes = []
    if ctx.ranges:
        notes.append(
            '<p class="note">Anomaly maps (right of each image): <span class="legend"></span> '
            "low to high, one scale per view over the cards shown.</p>"
        )
    if any(card.masks for card in cards):
        notes.append(
            '<p class="note">Ground-truth masks: the boundary of each defect region is outlined in '
            '<span class="outline-key"></span> cyan, over the image and over its anomaly map.</p>'
        )
    return notes


def _page(title: str, body: Sequence[str]) -> str:
    """Wrap the body parts in the whole HTML document."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            f'<meta name="generator" content="mmocc {__version__}">',
            f"<title>{escape(title)}</title>",
            f"<style>\n{_asset('report.css')}</style>",
            "</head>",
            "<body>",
            *body,
            f"<footer>Written by mmocc {__version__}.</footer>",
            f"<script>\n{_asset('report.js')}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _check_counts(top_k: int, n_near: int) -> None:
    """Reject card counts out of range."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if n_near < 0:
        raise ValueError(f"n_near must be >= 0, got {n_near}")


def build_report(
    clf: MultimodalOCC,
    dataset: MultiViewDataset,
    *,
    top_k: int = 24,
    n_near: int = 12,
    title: str | None = None,
    source: str | None = None,
    model_path: str | os.PathLike[str] | None = None,
) -> str:
    """Score a data set and return a self-contained HTML report of the scores.

    Parameters
    ----------
    clf : MultimodalOCC
        A fitted detector.
    dataset : MultiViewDataset
        The samples to score, with the views the model was fitted on; labels,
        source paths and ground-truth masks are shown when the data set has them.
    top_k : int, default 24
        Cards of at most this many highest-scoring samples above the threshold.
    n_near : int, default 12
        Cards of at most this many samples nearest below (or at) the threshold.
    title : str, optional
        The page title; default ``"mmocc report: <model file name>"``.
    source : str, optional
        The data source to name in the header.
    model_path : str or path-like, optional
        The model file to name in the header.

    Returns
    -------
    str
        The HTML document: a header, a score histogram (stacked by label,
        with a legend, when labels are known), the cards (image views side by
        side, with anomaly maps blended over them where the model's score
        rule gives maps, and the outline of each non-empty mask over both)
        and a sortable table of every sample.

    Raises
    ------
    ValueError
        For ``top_k < 1``, ``n_near < 0``, an empty data set, or data the
        model cannot score.
    """
    _check_counts(top_k, n_near)
    if len(dataset) == 0:
        raise ValueError("the data set has no samples to report on")
    total, by_view, parts = clf.decision_function_details(dataset)
    seen = None if clf.train_fingerprints_ is None else int(clf.seen_in_training(dataset).sum())
    scored = ScoredSamples(
        dataset.ids,
        dataset.labels,
        dataset.paths,
        np.asarray(total, np.float64),
        by_view,
        float(clf.threshold_),
        seen,
        parts,
    )
    return render_report(
        clf,
        scored,
        dataset.subset,
        top_k=top_k,
        n_near=n_near,
        title=title,
        source=source,
        model_path=model_path,
    )


def render_report(
    clf: MultimodalOCC,
    scored: ScoredSamples,
    load: Callable[[np.ndarray], MultiViewDataset],
    *,
    top_k: int = 24,
    n_near: int = 12,
    title: str | None = None,
    source: str | None = None,
    model_path: str | os.PathLike[str] | None = None,
) -> str:
    """Return the HTML report of samples already scored, loading the images of the cards only.

    This is :func:`build_report` for data that is not held in memory:
    ``mmocc report`` scores a source chunk by chunk, keeps the scores, then
    decodes the few samples shown as cards again.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector that gave the scores.
    scored : ScoredSamples
        Every sample and its scores.
    load : callable
        ``load(indices)`` returns the samples at those rows of ``scored``,
        in that order, with their views (and masks, to outline them).
    top_k, n_near, title, source, model_path
        As for :func:`build_report`.

    Returns
    -------
    str
        The HTML document, as :func:`build_report` returns it.

    Raises
    ------
    ValueError
        For ``top_k < 1``, ``n_near < 0`` or no samples.
    """
    _check_counts(top_k, n_near)
    n = len(scored.total)
    if n == 0:
        raise ValueError("the data set has no samples to report on")
    top, near = select_cards(scored.total, scored.threshold, top_k, n_near)
    indices = np.concatenate([top, near])
    cards = make_cards(clf, load(indices), indices) if indices.size else []
    ctx = CardContext(list(clf.view_specs_), scored, map_ranges(cards))
    n_above = int((scored.total > scored.threshold).sum())
    page_title = title or _default_title(model_path)
    body = [
        f"<h1>{escape(page_title)}</h1>",
        _header(clf, scored, model_path, source),
        _histogram(clf, scored),
        cards_section(ctx, cards[: top.size], f"Highest scores above τ ({top.size} of {n_above})"),
    ]
    if n_near:
        heading = f"Nearest below τ ({near.size} of {n - n_above})"
        body.append(cards_section(ctx, cards[top.size :], heading))
    body += _legend_notes(ctx, cards)
    paths = [spec.name for spec in ctx.specs if spec.name in scored.paths]
    body.append(f"<section><h2>All samples ({n})</h2>{_SORT_NOTE}{samples_table(scored, paths)}</section>")
    return _page(page_title, body)


def _default_title(model_path: str | os.PathLike[str] | None) -> str:
    """Return the page title used when none is given."""
    return "mmocc report" if model_path is None else f"mmocc report: {os.path.basename(model_path)}"


def write_report(path: str | os.PathLike[str], html: str) -> None:
    """Write a report atomically, as UTF-8.

    Parameters
    ----------
    path : str or path-like
        The HTML file; its folder is created if needed. If writing fails, an
        existing file is left untouched.
    html : str
        The document, as :func:`build_report` returns it.
    """
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(html)
