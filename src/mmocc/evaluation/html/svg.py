"""The score histogram of a report, drawn as inline SVG with the threshold marked, coloured by label."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

import numpy as np

MAX_LABEL_SERIES = 6
"""Labelled data with at most this many labels gets one histogram series per label."""


@dataclass(frozen=True)
class LabelGroups:
    """The series of a histogram coloured by label: each sample's group, and each group's legend name.

    Attributes
    ----------
    names : list of str
        The legend name of each group, in drawing order (the first at the bottom of a stack).
    index : numpy.ndarray of int, shape (n,)
        The group of each sample.
    """

    names: list[str]
    index: np.ndarray


def label_groups(labels: np.ndarray, normal: Iterable[object] = ()) -> LabelGroups:
    """Group the samples by label for the histogram's series.

    With at most :data:`MAX_LABEL_SERIES` labels, each label is a group,
    the normal ones first (marked ``(normal)``), then the others in sorted
    order. With more labels, the groups are ``normal`` and ``anomalous``
    when the normal labels are known and present; otherwise the
    ``MAX_LABEL_SERIES - 1`` most frequent labels and one group of the rest.

    Parameters
    ----------
    labels : numpy.ndarray of shape (n,)
        The samples' labels.
    normal : iterable, optional
        The normal labels (as the model file records them; compared as text).

    Returns
    -------
    LabelGroups
        The groups.

    Examples
    --------
    >>> import numpy as np
    >>> groups = label_groups(np.array(["scratch", "good", "dent", "good"]), normal=["good"])
    >>> groups.names, groups.index.tolist()
    (['good (normal)', 'dent', 'scratch'], [2, 0, 1, 0])
    """
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    text = classes.astype(str)
    is_normal = np.isin(text, [str(label) for label in normal])
    if classes.size <= MAX_LABEL_SERIES:
        order = np.argsort(~is_normal, kind="stable")
        names = [text[i] + (" (normal)" if is_normal[i] else "") for i in order.tolist()]
        return LabelGroups(names, np.argsort(order)[inverse])
    if is_normal.any():
        names = [f"normal ({', '.join(text[is_normal])})", f"anomalous ({int((~is_normal).sum())} labels)"]
        return LabelGroups(names, (~is_normal[inverse]).astype(np.intp))
    top = np.argsort(-counts, kind="stable")[: MAX_LABEL_SERIES - 1]
    rank = np.full(classes.size, top.size)
    rank[top] = np.arange(top.size)
    names = [*text[top].tolist(), f"other ({classes.size - top.size} labels)"]
    return LabelGroups(names, rank[inverse])


def histogram_svg(
    scores: np.ndarray, threshold: float, *, bins: int | None = None, groups: LabelGroups | None = None
) -> str:
    """Draw the histogram of the scores as inline SVG, with the threshold marked.

    Without ``groups``, bars above the threshold are red and the others
    blue. With them, each bin stacks one bar per group, in the group's
    colour (CSS classes ``g0``, ``g1``, ...), and each group is one
    ``<g class="series">`` element with ``data-label`` and ``data-count``.
    Non-finite scores are left out.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Anomaly scores.
    threshold : float
        Drawn as a dashed vertical line labelled τ.
    bins : int, optional
        Number of bins; default ``sqrt(n)`` clipped to [10, 60].
    groups : LabelGroups, optional
        The group of each score, as :func:`label_groups` returns it.

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
    keep = np.isfinite(scores)
    finite = scores[keep]
    lo, hi = _span(finite, threshold)
    n_bins = bins or int(np.clip(np.sqrt(finite.size), 10, 60))
    counts, edges = np.histogram(finite, bins=n_bins, range=(lo, hi))
    frame = _Frame(lo, hi, max(int(counts.max(initial=0)), 1))
    if groups is None:
        bars = _bars(frame, counts, edges, threshold)
    else:
        bars = _stacked_bars(frame, finite, groups.index[keep], groups.names, edges)
    parts = [
        f'<svg class="hist" viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" role="img" aria-label="Histogram of {finite.size} anomaly scores">',
        *bars,
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


def _stacked_bars(
    frame: _Frame, scores: np.ndarray, index: np.ndarray, names: list[str], edges: np.ndarray
) -> list[str]:
    """One ``<g class="series">`` per group, its bars stacked on those of the groups before it."""
    counts = np.stack([np.histogram(scores[index == g], bins=edges)[0] for g in range(len(names))])
    below = np.cumsum(counts, axis=0) - counts
    parts = []
    for g, name in enumerate(names):
        label = escape(name)
        parts.append(f'<g class="series g{g}" data-label="{label}" data-count="{int(counts[g].sum())}">')
        for b in np.flatnonzero(counts[g]).tolist():
            x0, x1 = frame.x(edges[b]), frame.x(edges[b + 1])
            y0, y1 = frame.y(below[g, b]), frame.y(below[g, b] + counts[g, b])
            parts.append(
                f'<rect x="{x0:.1f}" y="{y1:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" height="{y0 - y1:.1f}">'
                f"<title>{label}, [{edges[b]:.4g}, {edges[b + 1]:.4g}): {counts[g, b]}</title></rect>"
            )
        parts.append("</g>")
    return parts


def histogram_legend(groups: LabelGroups) -> str:
    """Return the legend of a histogram coloured by label: each group's colour, name and count.

    Parameters
    ----------
    groups : LabelGroups
        The groups drawn.

    Returns
    -------
    str
        A ``<ul class="hist-legend">`` element; names are escaped. A count is
        every sample of the group; the bars leave non-finite scores out.
    """
    counts = np.bincount(groups.index, minlength=len(groups.names))
    items = "".join(
        f'<li><span class="swatch g{g}"></span>{escape(name)}: {int(count)}</li>'
        for g, (name, count) in enumerate(zip(groups.names, counts.tolist(), strict=True))
    )
    return f'<ul class="hist-legend">{items}</ul>'


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
