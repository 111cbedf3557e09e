"""Render REAL.md from ``results/real.json`` (written by ``real.py``).

Records: ``run`` (command, date, wall ``seconds``, ``partial``, machine, seeds,
threads, smoke, data, protocols), then one ``row`` record per row and protocol
(``row`` label, ``spec``, ``derived`` None or how a per-view baseline was built
from the row's single-lighting models, ``seeds``, sizes, ``image_roc_auc``,
``pixel_roc_auc``, ``aupro`` and ``attribution`` as mean ± std or None,
``attribution_chance``, ``attribution_peak``, mean ``fit_seconds``,
``score_seconds`` and ``maps_seconds``, ``types`` {type: means}, and with single
lightings ``singles``, ``best_single`` and ``joint_minus_best``), then one
``skipped`` record per row left out (``row``, ``reason``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from render import Record, Template, Topic, mean_std, template

TARGETS = (
    ("image_random", "image_roc_auc", 0.98), ("image_random", "pixel_roc_auc", 0.95),
    ("image_random", "aupro", 0.85), ("tiles", "image_roc_auc", 0.99),
    ("tiles", "joint_minus_best", 0.0), ("tiles", "attribution", 0.90),
)
"""(protocol, figure, target) of issue 20, in table order; a figure must reach its target (beat it for 0)."""
COST_TARGET = 300.0
"""Fit + score seconds of one six-lighting split."""
DEFECT_TYPES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")


def _cell(stat: Any) -> str:
    return "—" if stat is None else mean_std(stat)


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _label(t: Template, row: Record) -> str:
    return row["row"] if row["derived"] is None else t(f"derived_{row['derived']}", row)


def _values(t: Template, row: Record) -> Record:
    """A row record with its cells formatted for the tables."""
    seconds = [row["fit_seconds"], row["score_seconds"]]
    types = row["types"]
    cells = {kind: " / ".join(_number(types[kind][m], 2) for m in ("image_roc_auc", "pixel_roc_auc", "aupro"))
             if kind in types else "—" for kind in DEFECT_TYPES}
    singles = row.get("singles")
    return row.plus(
        label=_label(t, row), seed_list=", ".join(map(str, row["seeds"])), image=_cell(row["image_roc_auc"]),
        pixel=_cell(row["pixel_roc_auc"]), pro=_cell(row["aupro"]), pro_loaded=_cell(row["aupro_loaded"]),
        attr=_cell(row["attribution"]),
        chance=_number(row["attribution_chance"], 2), peak=_number(row["attribution_peak"], 2),
        fit=_number(seconds[0], 1), score=_number(seconds[1], 1), maps=_number(row["maps_seconds"], 1),
        total=_number(sum(seconds), 1), type_cells=" | ".join(cells.values()),
        light_cells=" | ".join(f"{v:.3f}" for v in singles.values()) if singles else "",
        best=_cell(row.get("best_single")), gap=_cell(row.get("joint_minus_best")),
    )


def _figure(row: Record, name: str) -> float | None:
    stat = row.get(name)
    return None if stat is None else stat["mean"]


def _targets(t: Template, topic: Topic) -> str:
    """One line per target of issue 20: the best own row for it, its value, met or missed and by how much."""
    lines = []
    for protocol, name, goal in TARGETS:
        rows = [r for r in topic.all("row", protocol=protocol, derived=None) if _figure(r, name) is not None]
        lines.append(_target_line(t, rows, lambda r, n=name: _figure(r, n), goal, protocol, name))
    tiles = [r for r in topic.all("row", protocol="tiles", derived=None)]
    best = max(tiles, key=lambda r: r["image_roc_auc"]["mean"], default=None)
    cost = None if best is None else best["fit_seconds"] + best["score_seconds"]
    lines.append(t("target_cost", row=_label(t, best) if best else "—", value=cost, goal=COST_TARGET,
                   met=None if cost is None else cost < COST_TARGET,
                   margin=None if cost is None else cost - COST_TARGET))
    return "\n".join(lines)


def _target_line(t: Template, rows: list[Record], value: Callable[[Record], float | None], goal: float,
                 protocol: str, name: str) -> str:
    best = max(rows, key=value, default=None)
    figure = None if best is None else value(best)
    met = None if figure is None else figure > goal if goal == 0.0 else figure >= goal
    return t("target", what=t(f"target_{protocol}_{name}"), row=_label(t, best) if best else "—",
             value=figure, goal=goal, met=met, margin=None if figure is None else figure - goal)


def _table(t: Template, topic: Topic, protocol: str, block: str, rows: list[Record] | None = None) -> str:
    rows = topic.all("row", protocol=protocol) if rows is None else rows
    if not rows:
        return t("not_run")
    return t.rows(block, [_values(t, r) for r in rows])


def render(topic: Topic) -> str:
    """The text of REAL.md: header, targets, one table per protocol, single lightings, types, left out."""
    t = template("real")
    run = topic.run
    tiles_singles = [r for r in topic.all("row", protocol="tiles") if r.get("singles")]
    skipped = topic.all("skipped")
    types = "".join(t("types", protocol=t(f"name_{p}"), rows=_table(t, topic, p, "type_row"))
                    for p in ("image_random", "image_group", "tiles"))
    protocols = ("image_random", "image_group", "tiles")
    tables = {p: _table(t, topic, p, "tiles_row" if p == "tiles" else "image_row") for p in protocols}
    firsts = {p: topic.first("row", protocol=p) for p in protocols}
    sizes = {f"size_{p}": t("size", first) if first else t("size_none") for p, first in firsts.items()}
    return t(
        "page", run, status=t("partial") if run["partial"] else "", minutes=run["seconds"] / 60,
        isa=", ".join(run["machine"]["isa"]) or "none of AVX2/AVX-512",
        seed_list=", ".join(map(str, run["seeds"])), targets=_targets(t, topic), **tables, **sizes,
        singles=_table(t, topic, "tiles", "singles_row", tiles_singles), types=types,
        skipped="".join(t("skipped_row", r) for r in skipped) if skipped else t("none_skipped"),
        notes=t("notes_subset") if "--rows" in run["command"] else t("notes", minutes=run["seconds"] / 60),
    )
