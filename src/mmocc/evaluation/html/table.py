"""The table of every sample of a report: one row per sample, columns sortable by the page's script."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple

import numpy as np

from mmocc.detectors.parts import fired_part
from mmocc.evaluation.html.samples import ScoredSamples


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


def _part_columns(scored: ScoredSamples) -> list[_Column]:
    """Return the ``fired`` and ``part_<part>`` columns of ``score="combined"`` (none for other rules)."""
    if not scored.parts:
        return []
    return [
        _Column("fired", "text", _text_cells(fired_part(scored.parts))),
        *(_Column(f"part_{name}", "num", _number_cells(values)) for name, values in scored.parts.items()),
    ]


def _columns(scored: ScoredSamples, path_views: Sequence[str]) -> list[_Column]:
    """Return the columns of the table: id, label if known, scores, flag, per-view scores, files."""
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
        *_part_columns(scored),
        *(_Column(f"score_{view}", "num", _number_cells(values)) for view, values in scored.by_view.items()),
        *(_Column(f"path_{view}", "text", _text_cells(scored.paths[view])) for view in path_views),
    ]
    return columns


def samples_table(scored: ScoredSamples, path_views: Sequence[str]) -> str:
    """Return the table of every sample, one plain row each; anomalies are highlighted.

    Parameters
    ----------
    scored : ScoredSamples
        Every sample and its scores.
    path_views : sequence of str
        The views whose source files get a column, in column order.

    Returns
    -------
    str
        The ``<table id="samples">`` in its scrolling ``<div>``; every header
        cell names its column in ``data-key`` and its kind in ``data-type``.
    """
    columns = _columns(scored, path_views)
    head = "".join(
        f'<th data-key="{escape(column.key)}" data-type="{column.kind}">'
        f'<button type="button">{escape(column.key)}</button></th>'
        for column in columns
    )
    flags = (scored.total > scored.threshold).tolist()
    rows = "\n".join(
        f"<tr{' class=anomaly' if flag else ''}>{''.join(cells)}</tr>"
        for flag, *cells in zip(flags, *(column.cells for column in columns), strict=True)
    )
    return (
        f'<div class="table-wrap"><table id="samples"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )
