"""Render COMBINED.md from ``results/combined.json`` (written by ``combined.py``).

Records: ``run`` (command, date, wall ``seconds`` or None, machine, seeds, presets,
workers, targets, novelty protocol titles, defect title); ``novelty`` (protocol,
preset, tasks, spreads of ``roc_auc``, ``worst`` and ``normal_recall``, mean
``seconds``); ``defect`` (preset, tasks, mean ``image``, ``worst``, ``pixel``,
``attribution``, ``normal_recall``, ``fired_local``, ``fired_global_others``,
``seconds``; None where the preset has no such output); ``mtile`` (row, spec,
figures of Magnetic-tile protocol (a)); ``choice`` (dataset, combination, tasks, mean ROC AUC
of painted defects and other classes, and the tasks it wins); ``cost`` (where, seconds of default,
patch and combined, ratio to the slower part).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from render import Template, Topic, bold, mean_std, template

NOVELTY_TARGETS = ("coil_random", "coil_unseen", "mfeat")
LOCAL_MTILE = ("pretrained", "patch")
"""The local presets' Magnetic-tile rows, against which the combined rows are held."""


def render(topic: Topic) -> str:
    """The text of COMBINED.md."""
    t = template("combined")
    run = topic.run
    wall = t("untimed") if run["seconds"] is None else t("timed", minutes=run["seconds"] / 60)
    novelty = "".join(_novelty(t, topic, p, title) for p, title in run["novelty_protocols"].items())
    defect_rows = [
        r.plus(name=bold(r["preset"], r["preset"] == "combined"), seed_list=_seeds(r))
        for r in topic.all("defect")
    ]
    mtile = [r.plus(name=bold(r["row"], r["row"].startswith("combined"))) for r in topic.all("mtile")]
    lines, missed, unmeasured = _targets(t, topic)
    tail = t("unmeasured", names=", ".join(unmeasured)) if unmeasured else ""
    verdict = (
        t("verdict_missed", missed=missed, unmeasured=tail) if missed else t("verdict_met", unmeasured=tail)
    )
    choice = t.rows("choice_row", topic.all("choice")) or t("none")
    timing = topic.first("timing")
    return t(
        "page",
        run,
        wall=wall,
        isa=", ".join(run["machine"]["isa"]),
        novelty=novelty,
        choice=choice,
        timing=t("no_timing") if timing is None else t("timing", timing),
        defects=t.rows("defect_row", defect_rows) or t("none"),
        mtile=t.rows("mtile_row", mtile) or t("none"),
        cost=t.rows("cost_row", topic.all("cost")) or t("none"),
        targets_lines="\n".join(lines),
        verdict=verdict,
    )


def _seeds(record: Mapping[str, Any]) -> str:
    return ", ".join(map(str, record["seeds"]))


def _novelty(t: Template, topic: Topic, protocol: str, title: str) -> str:
    rows = [
        r.plus(
            name=bold(r["preset"], r["preset"] == "combined"),
            seed_list=_seeds(r),
            roc=mean_std(r["roc_auc"], 4),
            worst_text=mean_std(r["worst"]),
            recall=mean_std(r["normal_recall"]),
        )
        for r in topic.all("novelty", protocol=protocol)
    ]
    return t("novelty_protocol", title=title, rows=t.rows("novelty_row", rows) or t("none"))


def _line(
    t: Template, what: str, value: float | None, target: float, at_least: bool = True
) -> tuple[str, bool]:
    """One target line and whether it is missed (a value not measured is not counted as missed)."""
    if value is None:
        return t("target_none", what=what, target=target), False
    met = value >= target if at_least else value <= target
    shown = f"≥ {target}" if at_least else f"≤ {target}"
    if met:
        return t("target_met", what=what, value=value, target=shown), False
    return t("target_missed", what=what, value=value, target=shown, gap=abs(target - value)), True


def _targets(t: Template, topic: Topic) -> tuple[list[str], int, list[str]]:
    """The issue's targets for ``combined``: lines, how many are missed, and which were not measured."""
    targets = topic.run["targets"]
    checks: list[tuple[str, float | None, float, bool]] = []
    for protocol in NOVELTY_TARGETS:
        found = topic.first("novelty", protocol=protocol, preset="combined")
        checks.append(
            (
                f"{protocol} mean ROC AUC",
                None if found is None else found["roc_auc"]["mean"],
                targets[protocol],
                True,
            )
        )
    found = topic.first("defect", preset="combined")
    checks.append(
        (
            "COIL-20 painted defects image ROC AUC",
            None if found is None else found["image"],
            targets["defects"],
            True,
        )
    )
    combined = topic.first("mtile", row="combined")
    local = [r["image_roc_auc"] for r in topic.all("mtile") if r["row"] in LOCAL_MTILE]
    gap = None if combined is None or not local else max(local) - combined["image_roc_auc"]
    checks.append(
        ("Magnetic-tile (a): best local preset here minus combined", gap, targets["mtile_gap"], False)
    )
    timing = topic.first("timing")
    if timing is not None:
        checks.append(
            (
                "cost on one task, best of repeats (combined / slower part)",
                timing["ratio"],
                targets["cost"],
                False,
            )
        )
    pretrained = topic.first("mtile", row="combined_pretrained")
    if pretrained is not None and local:
        variant = max(local) - pretrained["image_roc_auc"]
        lines_extra = [t("target_variant", gap=variant, target=targets["mtile_gap"])]
    else:
        lines_extra = []
    for record in topic.all("cost"):
        checks.append(
            (f"cost on {record['where']} (combined / slower part)", record["ratio"], targets["cost"], False)
        )
    lines, missed, unmeasured = [], 0, []
    for what, value, target, at_least in checks:
        line, miss = _line(t, what, value, target, at_least)
        lines.append(line)
        missed += miss
        if value is None:
            unmeasured.append(what)
    return lines + lines_extra, missed, unmeasured
