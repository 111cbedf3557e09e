"""A self-contained HTML report of a fitted detector's scores on a data set.

:func:`build_report` scores every sample and returns one HTML page that needs
nothing else to open (no network, no external file):

- a header: model file, preset and score rule, threshold τ, number of
  samples and of samples above τ, data source;
- a score histogram with τ marked, drawn as inline SVG;
- cards of the highest-scoring samples above τ and of the normals nearest
  below τ: every image view side by side (PNG data URIs), with the anomaly
  map blended over it where the model has maps, the scores, label, sample id
  and source file of each view;
- a table of every sample (id, label, score, is_anomaly, per-view scores,
  source files), sorted by clicking a header; ``report.html#sort=-score``
  opens it sorted (``-`` for descending) by the column of that key.

The page's Content-Security-Policy allows only inline styles, inline scripts
and ``data:`` images, so opening it makes no request. :func:`write_report`
writes it atomically.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image

from mmocc import __version__
from mmocc.utils.files import atomic_open

if TYPE_CHECKING:
    from mmocc.data.dataset import MultiViewDataset
    from mmocc.data.inputs import ViewSpec
    from mmocc.detectors.multimodal import MultimodalOCC

THUMB_PX = 128
"""Displayed size (px) of the longer side of a card image; small images are scaled up pixelated."""

_HEAT_ALPHA = 0.65
_HEAT_ANCHORS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64
)
"""Colours of the heat map from low to high (close to matplotlib's inferno)."""

_HEAT_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_HEAT_ANCHORS)), c) for c in _HEAT_ANCHORS.T],
    axis=1,
)
"""The 256-entry colour lookup of the heat map, (256, 3) in [0, 255]."""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_SORT_NOTE = (
    '<p class="note">Click a header to sort; add #sort=KEY (or #sort=-KEY, descending) to the address '
    "to open sorted, e.g. #sort=-score.</p>"
)

_CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; }
body { margin: 0 auto; max-width: 1500px; padding: 1rem 1.5rem 3rem; background: #fff; }
h1 { font-size: 1.4rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.1rem; margin: 1.8rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid #d7dbe2; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
.meta dt { color: #5b6472; }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.note { color: #5b6472; font-size: .85rem; }
.legend { display: inline-block; width: 8rem; height: .7rem; vertical-align: middle; background:
  linear-gradient(to right, #000004, #57106e, #bc3754, #f98e09, #fcffa4); }
svg.hist { max-width: 100%; height: auto; }
svg.hist text { font-size: 11px; fill: #1d2430; }
svg.hist .below { fill: #4c78a8; }
svg.hist .above { fill: #e45756; }
svg.hist .axis { stroke: #1d2430; }
svg.hist .tau { stroke: #b3261e; stroke-width: 1.5; stroke-dasharray: 5 3; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { border: 1px solid #d7dbe2; border-left: 4px solid #4c78a8; border-radius: 6px; padding: .5rem;
  background: #fafbfc; }
.card.anomaly { border-left-color: #e45756; }
.card h3 { font-size: .9rem; margin: 0 0 .4rem; display: flex; gap: .8rem; }
.card h3 .sid { overflow-wrap: anywhere; max-width: 24rem; }
.views { display: flex; flex-wrap: wrap; gap: .6rem; }
figure { margin: 0; }
figcaption { font-size: .75rem; color: #5b6472; max-width: 260px; overflow-wrap: anywhere; }
.pair { display: flex; gap: 2px; }
img.px { image-rendering: pixelated; display: block; }
.vector { width: 128px; height: 128px; display: flex; align-items: center; justify-content: center;
  border: 1px dashed #aab1bd; font-size: .75rem; color: #5b6472; }
.table-wrap { max-height: 80vh; overflow: auto; border: 1px solid #d7dbe2; }
table { border-collapse: collapse; font-size: .8rem; }
th, td { padding: .15rem .6rem; border-bottom: 1px solid #eceef2; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { position: sticky; top: 0; background: #f1f3f6; }
th button { font: inherit; font-weight: 600; border: 0; padding: 0; background: none; cursor: pointer; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tr.anomaly td { background: #fdecec; }
footer { margin-top: 2rem; color: #5b6472; font-size: .8rem; }
"""

_JS = """
"use strict";
(() => {
  const table = document.getElementById("samples");
  const heads = Array.from(table.tHead.rows[0].cells);
  const body = table.tBodies[0];
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const toNumber = (text) => {
    const value = parseFloat(text);
    return Number.isNaN(value) ? -Infinity : value;
  };
  const compareNumbers = (a, b) => (a > b) - (a < b);
  function sortTable(key, descending) {
    const col = heads.findIndex((th) => th.dataset.key === key);
    if (col < 0) return;
    const numeric = heads[col].dataset.type === "num";
    const keyed = Array.from(body.rows, (row) => {
      const cell = row.cells[col];
      const text = cell.dataset.v ?? cell.textContent;
      return [numeric ? toNumber(text) : text, row];
    });
    const compare = numeric ? compareNumbers : collator.compare;
    const sign = descending ? -1 : 1;
    keyed.sort((a, b) => sign * compare(a[0], b[0]));
    const fragment = document.createDocumentFragment();
    for (const [, row] of keyed) fragment.appendChild(row);
    body.appendChild(fragment);
    for (const th of heads) th.removeAttribute("aria-sort");
    heads[col].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function sortFromHash() {
    const match = /(?:^#|&)sort=(-?)([^&]*)/.exec(location.hash);
    if (!match) return;
    try {
      sortTable(decodeURIComponent(match[2]), match[1] === "-");
    } catch (error) {
      if (!(error instanceof URIError)) throw error;
    }
  }
  table.tHead.addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th || !th.dataset.key) return;
    const descending = th.getAttribute("aria-sort") === "ascending";
    sortTable(th.dataset.key, descending);
    history.replaceState(null, "", "#sort=" + (descending ? "-" : "") + encodeURIComponent(th.dataset.key));
  });
  window.addEventListener("hashchange", sortFromHash);
  sortFromHash();
})();
"""


@dataclass(frozen=True)
class ScoredSamples:
    """Every sample of a report, without its images: ids, labels, source files and scores.

    Attributes
    ----------
    ids : numpy.ndarray of shape (n,)
        Sample ids.
    labels : numpy.ndarray of shape (n,) or None
        Labels; None for unlabelled data.
    paths : dict of str to numpy.ndarray
        Source file of each sample, per view read from files.
    total : numpy.ndarray of shape (n,), dtype float64
        Anomaly scores.
    by_view : dict of str to numpy.ndarray
        Per-view scores (empty when the model's rule scores views jointly).
    threshold : float
        The detector's threshold.
    n_seen : int or None
        How many samples the model was trained on; None when the model
        records no training fingerprints.
    """

    ids: np.ndarray
    labels: np.ndarray | None
    paths: dict[str, np.ndarray]
    total: np.ndarray
    by_view: dict[str, np.ndarray]
    threshold: float
    n_seen: int | None


@dataclass(frozen=True)
class _Context:
    """What every card needs: the model's views, the scored samples and the scale of each view's maps."""

    specs: list[ViewSpec]
    scored: ScoredSamples
    ranges: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class _Card:
    """One sample shown as a card: its row in the samples, images and anomaly maps (empty without maps)."""

    index: int
    images: dict[str, np.ndarray]
    maps: dict[str, np.ndarray]


def select_cards(
    scores: np.ndarray, threshold: float, top_k: int, n_near: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the samples shown as cards.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Anomaly scores (higher = more anomalous).
    threshold : float
        The detector's threshold; a sample is an anomaly when its score is above it.
    top_k : int
        How many of the highest-scoring anomalies to show.
    n_near : int
        How many of the normals nearest below the threshold to show.

    Returns
    -------
    top : numpy.ndarray of int
        Indices of at most ``top_k`` samples above the threshold, highest score first.
    near : numpy.ndarray of int
        Indices of at most ``n_near`` samples at or below the threshold, highest score first.

    Examples
    --------
    >>> import numpy as np
    >>> top, near = select_cards(np.array([0.1, 3.0, 0.9, 2.0, 0.5]), 1.0, top_k=5, n_near=2)
    >>> top.tolist(), near.tolist()
    ([1, 3], [2, 4])
    """
    order = np.argsort(-scores, kind="stable")
    above = scores[order] > threshold
    return order[above][:top_k], order[~above][:n_near]


def histogram_svg(scores: np.ndarray, threshold: float, *, bins: int | None = None) -> str:
    """Draw the histogram of the scores as inline SVG, with the threshold marked.

    Bars above the threshold are red, the others blue; non-finite scores are left out.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Anomaly scores.
    threshold : float
        Drawn as a dashed vertical line labelled τ.
    bins : int, optional
        Number of bins; default ``sqrt(n)`` clipped to [10, 60].

    Returns
    -------
    str
        An ``<svg>`` element (no namespace attribute, as HTML allows).

    Examples
    --------
    >>> import numpy as np
    >>> svg = histogram_svg(np.array([0.0, 1.0, 1.5, 4.0]), 2.0)
    >>> svg.startswith("<svg") and "anomaly score" in svg and "τ = 2" in svg
    True
    """
    finite = scores[np.isfinite(scores)]
    lo, hi = _span(finite, threshold)
    n_bins = bins or int(np.clip(np.sqrt(finite.size), 10, 60))
    counts, edges = np.histogram(finite, bins=n_bins, range=(lo, hi))
    frame = _Frame(lo, hi, max(int(counts.max(initial=0)), 1))
    parts = [
        f'<svg class="hist" viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" role="img" aria-label="Histogram of {finite.size} anomaly scores">',
        *_bars(frame, counts, edges, threshold),
        *_axes(frame),
        *_threshold_line(frame, threshold),
        "</svg>",
    ]
    return "\n".join(parts)


def _span(values: np.ndarray, threshold: float) -> tuple[float, float]:
    """Range of the histogram: the values and the threshold, never empty."""
    lo = float(min(values.min(initial=threshold), threshold))
    hi = float(max(values.max(initial=threshold), threshold))
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return lo - pad, hi + pad


@dataclass(frozen=True)
class _Frame:
    """Geometry of the histogram: data ranges and the plot box in SVG units."""

    lo: float
    hi: float
    y_max: int
    width: int = 720
    height: int = 240
    left: int = 56
    right: int = 16
    top: int = 16
    bottom: int = 44

    def x(self, value: float) -> float:
        """SVG x of a score."""
        return self.left + (value - self.lo) / (self.hi - self.lo) * (self.width - self.left - self.right)

    def y(self, count: float) -> float:
        """SVG y of a count."""
        return self.height - self.bottom - count / self.y_max * (self.height - self.top - self.bottom)


def _bars(frame: _Frame, counts: np.ndarray, edges: np.ndarray, threshold: float) -> list[str]:
    """One rectangle per non-empty bin, coloured by the side of the threshold its centre is on."""
    bars = []
    for count, start, stop in zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        if count == 0:
            continue
        x0, x1, y = frame.x(start), frame.x(stop), frame.y(count)
        side = "above" if (start + stop) / 2 > threshold else "below"
        bars.append(
            f'<rect class="{side}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{frame.y(0) - y:.1f}"><title>[{start:.4g}, {stop:.4g}): {count}</title></rect>'
        )
    return bars


def _axes(frame: _Frame) -> list[str]:
    """Both axes with ticks, tick labels and axis labels."""
    base, left = frame.y(0), frame.left
    parts = [
        f'<line class="axis" x1="{left}" y1="{base:.1f}" x2="{frame.width - frame.right}" y2="{base:.1f}"/>',
        f'<line class="axis" x1="{left}" y1="{frame.top}" x2="{left}" y2="{base:.1f}"/>',
    ]
    for value in np.linspace(frame.lo, frame.hi, 6).tolist():
        x = frame.x(value)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{base:.1f}" x2="{x:.1f}" y2="{base + 4:.1f}"/>')
        parts.append(f'<text x="{x:.1f}" y="{base + 16:.1f}" text-anchor="middle">{value:.3g}</text>')
    for count in sorted({0, frame.y_max // 2, frame.y_max}):
        y = frame.y(count)
        parts.append(f'<line class="axis" x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 7}" y="{y + 4:.1f}" text-anchor="end">{count}</text>')
    middle_x = (left + frame.width - frame.right) / 2
    middle_y = (frame.top + base) / 2
    parts.append(f'<text x="{middle_x:.1f}" y="{frame.height - 6}" text-anchor="middle">anomaly score</text>')
    parts.append(
        f'<text x="14" y="{middle_y:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle_y:.1f})">samples</text>'
    )
    return parts


def _threshold_line(frame: _Frame, threshold: float) -> list[str]:
    """Draw the dashed threshold line and its label."""
    x = frame.x(threshold)
    anchor = "end" if x > frame.width * 0.8 else "start"
    shift = -4 if anchor == "end" else 4
    return [
        f'<line class="tau" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.y(0):.1f}"/>',
        f'<text x="{x + shift:.1f}" y="{frame.top + 10}" text-anchor="{anchor}">τ = {threshold:.4g}</text>',
    ]


def to_display(image: np.ndarray) -> np.ndarray:
    """Turn one image of a view into displayable uint8 pixels.

    Parameters
    ----------
    image : numpy.ndarray of shape (C, H, W) or (H, W)
        One sample of an image view. uint8 is shown as is, other integers
        clipped to [0, 255], floats min-max scaled (as the model scales them).
        One or two channels show the first as grey, three or more the first
        three as RGB.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        Grey or RGB pixels.

    Examples
    --------
    >>> import numpy as np
    >>> to_display(np.zeros((3, 4, 5), np.uint8)).shape
    (4, 5, 3)
    >>> to_display(np.array([[0.0, 0.5, 1.0]])).tolist()
    [[0, 128, 255]]
    """
    planes = image if image.ndim == 3 else image[None]
    pixels = planes[0] if planes.shape[0] < 3 else np.moveaxis(planes[:3], 0, -1)
    if pixels.dtype == np.uint8:
        return pixels
    if not np.issubdtype(pixels.dtype, np.floating):
        return np.clip(pixels, 0, 255).astype(np.uint8)
    lo, hi = float(pixels.min()), float(pixels.max())
    scaled = (pixels - lo) / (hi - lo) if hi > lo else np.zeros_like(pixels, dtype=np.float64)
    return np.round(scaled * 255).astype(np.uint8)


def heat_overlay(pixels: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Blend a heat map over an image.

    Parameters
    ----------
    pixels : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The image, as :func:`to_display` returns it.
    heat : numpy.ndarray of shape (H, W)
        Values in [0, 1] (clipped): 0 leaves the pixel, 1 paints it 65% with
        the hottest colour.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        The blended RGB image.

    Examples
    --------
    >>> import numpy as np
    >>> heat_overlay(np.zeros((2, 2), np.uint8), np.array([[0.0, 0.0], [0.0, 1.0]]))[:, :, 1].tolist()
    [[0, 0], [0, 166]]
    """
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    level = np.clip(heat, 0.0, 1.0)
    colour = _HEAT_LUT[np.round(level * 255).astype(np.intp)]
    alpha = (_HEAT_ALPHA * level)[:, :, None]
    return np.round(rgb * (1 - alpha) + colour * alpha).astype(np.uint8)


def _display_size(height: int, width: int) -> tuple[int, int]:
    """Return the displayed (height, width) of an image: longer side THUMB_PX, aspect kept."""
    scale = THUMB_PX / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _img(pixels: np.ndarray, css_class: str, alt: str) -> str:
    """Return an ``<img>`` with the pixels as PNG data URI; large images are downscaled first."""
    height, width = _display_size(*pixels.shape[:2])
    image = Image.fromarray(pixels)
    if pixels.shape[0] > height or pixels.shape[1] > width:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="px {css_class}" src="{uri}" width="{width}" height="{height}" alt="{escape(alt)}">'


def _map_ranges(cards: Sequence[_Card]) -> dict[str, tuple[float, float]]:
    """Per view, the range of the anomaly maps shown: every overlay of a view shares one scale."""
    ranges: dict[str, tuple[float, float]] = {}
    for card in cards:
        for view, heat in card.maps.items():
            lo, hi = ranges.get(view, (np.inf, -np.inf))
            ranges[view] = (min(lo, float(heat.min())), max(hi, float(heat.max())))
    return ranges


def _scaled(heat: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """Scale a map to [0, 1] over its view's range."""
    lo, hi = span
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat, dtype=np.float64)


def _picture(ctx: _Context, card: _Card, spec: ViewSpec) -> str:
    """Show the image of one view of a card and its anomaly overlay, or a vector view placeholder."""
    if spec.kind != "image":
        return f'<div class="vector">vector view ({"×".join(map(str, spec.shape))})</div>'
    sample = str(ctx.scored.ids[card.index])
    pixels = to_display(np.asarray(card.images[spec.name]))
    images = [_img(pixels, "thumb", f"{spec.name} of sample {sample}")]
    if spec.name in card.maps:
        heat = _scaled(card.maps[spec.name], ctx.ranges[spec.name])
        images.append(
            _img(heat_overlay(pixels, heat), "heat", f"anomaly map of {spec.name}, sample {sample}")
        )
    return f'<div class="pair">{"".join(images)}</div>'


def _figure(ctx: _Context, card: _Card, spec: ViewSpec) -> str:
    """One view of a card: the picture, the view's score and its source file."""
    caption = [f"<strong>{escape(spec.name)}</strong>"]
    if spec.name in ctx.scored.by_view:
        caption.append(f"score {ctx.scored.by_view[spec.name][card.index]:.4g}")
    if spec.name in ctx.scored.paths:
        path = escape(str(ctx.scored.paths[spec.name][card.index]))
        caption.append(f'<span class="path" title="{path}">{path}</span>')
    return f"<figure>{_picture(ctx, card, spec)}<figcaption>{'<br>'.join(caption)}</figcaption></figure>"


def _card_html(ctx: _Context, card: _Card, rank: int) -> str:
    """One card: rank, sample id, score and label above every view of the sample."""
    score = float(ctx.scored.total[card.index])
    kind = "anomaly" if score > ctx.scored.threshold else "normal"
    head = [
        f'<span class="rank">#{rank}</span>',
        f'<span class="sid">id {escape(str(ctx.scored.ids[card.index]))}</span>',
        f'<span class="score">score {score:.4g}</span>',
    ]
    if ctx.scored.labels is not None:
        head.append(f'<span class="label">label {escape(str(ctx.scored.labels[card.index]))}</span>')
    figures = "".join(_figure(ctx, card, spec) for spec in ctx.specs)
    return (
        f'<article class="card {kind}"><h3>{"".join(head)}</h3><div class="views">{figures}</div></article>'
    )


def _cards_section(ctx: _Context, cards: Sequence[_Card], heading: str) -> str:
    """Lay out a titled section of cards, or a line saying there is none."""
    if cards:
        content = "".join(_card_html(ctx, card, rank) for rank, card in enumerate(cards, start=1))
        body = f'<div class="cards">{content}</div>'
    else:
        body = '<p class="note">No sample.</p>'
    return f"<section><h2>{escape(heading)}</h2>{body}</section>"


def _make_cards(clf: MultimodalOCC, chosen: MultiViewDataset, indices: np.ndarray) -> list[_Card]:
    """Cards of the samples ``chosen`` (rows ``indices`` of the report), with their anomaly maps."""
    maps: dict[str, np.ndarray] = {}
    if clf.has_anomaly_maps:
        maps = clf.anomaly_maps(chosen)
    return [
        _Card(
            index,
            {view: array[i] for view, array in chosen.views.items()},
            {view: stack[i] for view, stack in maps.items()},
        )
        for i, index in enumerate(indices.tolist())
    ]


def _header(
    clf: MultimodalOCC, ctx: _Context, model_path: str | os.PathLike[str] | None, source: str | None
) -> str:
    """Describe the model, data and threshold as a description list."""
    scored = ctx.scored
    n = len(scored.total)
    n_above = int((scored.total > scored.threshold).sum())
    views = ", ".join(f"{spec.name} ({spec.kind} {'×'.join(map(str, spec.shape))})" for spec in ctx.specs)
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


class _Column(NamedTuple):
    """One column of the table of samples: its key (also its title), kind ("num" or "text") and cells."""

    key: str
    kind: str
    cells: list[str]


def _number_cells(values: np.ndarray) -> list[str]:
    """Return numeric table cells: rounded text, full precision in ``data-v`` for sorting."""
    return [f'<td class="num" data-v="{value!r}">{value:.4g}</td>' for value in values.tolist()]


def _text_cells(values: np.ndarray, css_class: str = "") -> list[str]:
    """Return table cells of escaped text."""
    opening = f'<td class="{css_class}">' if css_class else "<td>"
    return [f"{opening}{escape(str(value))}</td>" for value in values.tolist()]


def _columns(ctx: _Context, path_views: Sequence[str]) -> list[_Column]:
    """Return the columns of the table: id, label if known, scores, flag, per-view scores, files."""
    scored = ctx.scored
    flags = (scored.total > scored.threshold).tolist()
    columns = [_Column("sample_id", "text", _text_cells(scored.ids))]
    if scored.labels is not None:
        numeric = bool(np.issubdtype(scored.labels.dtype, np.number))
        cells = _text_cells(scored.labels, "num" if numeric else "")
        columns.append(_Column("label", "num" if numeric else "text", cells))
    columns += [
        _Column("score", "num", _number_cells(scored.total)),
        _Column(
            "is_anomaly",
            "num",
            [f'<td data-v="{int(f)}">{"yes" if f else "no"}</td>' for f in flags],
        ),
        *(_Column(f"score_{view}", "num", _number_cells(values)) for view, values in scored.by_view.items()),
        *(_Column(f"path_{view}", "text", _text_cells(scored.paths[view])) for view in path_views),
    ]
    return columns


def _table(ctx: _Context, path_views: Sequence[str]) -> str:
    """Return the table of every sample, one plain row each; anomalies are highlighted."""
    columns = _columns(ctx, path_views)
    head = "".join(
        f'<th data-key="{escape(column.key)}" data-type="{column.kind}">'
        f'<button type="button">{escape(column.key)}</button></th>'
        for column in columns
    )
    flags = (ctx.scored.total > ctx.scored.threshold).tolist()
    rows = "\n".join(
        f"<tr{' class=anomaly' if flag else ''}>{''.join(cells)}</tr>"
        for flag, *cells in zip(flags, *(column.cells for column in columns), strict=True)
    )
    return (
        f'<div class="table-wrap"><table id="samples"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


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
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            f"<footer>Written by mmocc {__version__}.</footer>",
            f"<script>{_JS}</script>",
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
        The samples to score, with the views the model was fitted on; labels
        and source paths are shown when the data set has them.
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
        The HTML document: a header, a score histogram, the cards (image
        views side by side, with anomaly maps blended over them where the
        model's score rule gives maps) and a sortable table of every sample.

    Raises
    ------
    ValueError
        For ``top_k < 1``, ``n_near < 0``, an empty data set, or data the
        model cannot score.
    """
    _check_counts(top_k, n_near)
    if len(dataset) == 0:
        raise ValueError("the data set has no samples to report on")
    total, by_view = clf.decision_function_by_view(dataset)
    seen = None if clf.train_fingerprints_ is None else int(clf.seen_in_training(dataset).sum())
    scored = ScoredSamples(
        dataset.ids,
        dataset.labels,
        dataset.paths,
        np.asarray(total, np.float64),
        by_view,
        float(clf.threshold_),
        seen,
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
        in that order, with their views.
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
    cards = _make_cards(clf, load(indices), indices) if indices.size else []
    ctx = _Context(list(clf.view_specs_), scored, _map_ranges(cards))
    n_above = int((scored.total > scored.threshold).sum())
    page_title = title or _default_title(model_path)
    body = [
        f"<h1>{escape(page_title)}</h1>",
        _header(clf, ctx, model_path, source),
        f"<section><h2>Score histogram</h2>{histogram_svg(scored.total, scored.threshold)}</section>",
        _cards_section(ctx, cards[: top.size], f"Highest scores above τ ({top.size} of {n_above})"),
    ]
    if n_near:
        heading = f"Nearest below τ ({near.size} of {n - n_above})"
        body.append(_cards_section(ctx, cards[top.size :], heading))
    if ctx.ranges:
        body.append(
            '<p class="note">Anomaly maps (right of each image): <span class="legend"></span> '
            "low to high, one scale per view over the cards shown.</p>"
        )
    paths = [spec.name for spec in ctx.specs if spec.name in scored.paths]
    body.append(f"<section><h2>All samples ({n})</h2>{_SORT_NOTE}{_table(ctx, paths)}</section>")
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
