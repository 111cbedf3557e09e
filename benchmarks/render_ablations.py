"""Render ABLATIONS.md from ``results/ablations.json`` (written by ``ablations.py``).

Records: ``run`` (command, machine, jobs, seeds, the ``sweep`` settings, the
paper's Table IV, ``wall_seconds`` of the last invocation, ``sweep_seconds``);
``chosen`` (per preset and regularizer: the sweep's λ, γ, ratio and penalty);
``table4`` and ``table3`` rows (per-seed :func:`bench_common.spread` of each
metric; Table IV adds the paired ``delta``, ``wins``, ``losses`` and ``p``,
Table III the ``size``, ``seeds`` and ``seed0_roc_auc``); ``per_class_table``
(the ``table.md`` that ``mmocc experiment`` wrote, verbatim); ``distances``
(unit distance percentiles), ``bottleneck`` (their median), ``det_scale``
(det(S) per γ); ``sweep`` rows (one per preset and setting); ``job`` (wall
seconds and runs of each job); ``toml_mismatch`` (a config value that
differs from the sweep's choice).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from render import Record, Template, Topic, mean_std, template

STATS = ("roc_auc", "worst_roc_auc", "p_at_n", "anomaly_recall", "normal_recall")
EFFECTS = ("helps", "hurts", "unclear")


def render(topic: Topic) -> str:
    """The text of ABLATIONS.md."""
    t = template("ablations")
    run = topic.run
    mismatches = [t("mismatch", r) for r in topic.all("toml_mismatch")]
    jobs = [job.plus(minutes=job["wall_seconds"] / 60) for job in topic.all("job")]
    last = "" if run.get("wall_seconds") is None else t("last", run, minutes=run["wall_seconds"] / 60)
    return t("page", run, verdicts=verdicts(t, topic), why=why(t, topic), table4=table4(t, topic),
             table3=table3(t, topic), sweep=sweep(t, topic), job_rows=t.rows("job_row", jobs), last=last,
             warning=t("warning", mismatches="; ".join(mismatches)) if mismatches else "")


def effect(row: Record) -> str:
    """``helps`` or ``hurts`` when the paired Δ ROC AUC is at least 0.01 with p < 0.05, else ``unclear``."""
    if row["p"] < 0.05 and abs(row["delta"]) >= 0.01:
        return "helps" if row["delta"] > 0 else "hurts"
    return "unclear"


def verdicts(t: Template, topic: Topic) -> str:
    """The overall verdict and one line per preset, from the paired comparisons of Table IV."""
    regularized = [r for r in topic.all("table4") if r["model"] != "none"]
    if not regularized:
        return t("not_run")
    presets = []
    for preset in dict.fromkeys(r["preset"] for r in regularized):
        rows = [r for r in regularized if r["preset"] == preset]
        said = [t("effect", r, effect=t(effect(r))) for r in rows]
        presets.append(t("preset_verdict", preset=preset, effects="; ".join(said)))
    said_by = {kind: [t("labelled", r) for r in regularized if effect(r) == kind] for kind in EFFECTS}
    helps, hurts, rest = (", ".join(said_by[kind]) for kind in EFFECTS)
    if not helps and not hurts:
        overall = t("overall_none", largest=max(abs(r["delta"]) for r in regularized))
    else:
        parts = [t("overall_helps", models=helps)] if helps else []
        if hurts:
            parts.append(t("overall_hurts" if helps else "overall_only_hurts", models=hurts))
        if rest:
            parts.append(t("overall_unclear", models=rest))
        overall = "; ".join(parts) + "."
    return t("verdicts", overall=overall, presets="\n".join(presets))


def why(t: Template, topic: Topic) -> str:
    """The bullets that explain the numbers (each only when its figures exist)."""
    lines = []
    base = topic.first("table4", preset="paper", model="none")
    if base is not None:
        std = base["roc_auc"]["std"]
        lines.append(t("why_paper", base, spread=math.nan if std is None else std))
    det = topic.all("det_scale")
    if det:
        lines.append(t("why_det", values=", ".join(t("det_value", r) for r in det)))
    default = topic.first("table4", preset="default", model="none")
    ratios = [r["ratio"] for r in topic.all("sweep", preset="default") if r["regularizer"] is not None]
    if default is not None and topic.first("sweep", preset="default") is not None:
        lines.append(t("why_default", default, worst=100 * (max(ratios, default=1.0) - 1)))
    lines.append(t("why_gamma"))
    return "\n".join(lines)


def _stats(row: Record) -> Record:
    return row.plus(**{key: mean_std(row[key]) for key in STATS})


def table4(t: Template, topic: Topic) -> str:
    """Table IV, the paper's figures, and the per-class tables of ``mmocc experiment``."""
    run, rows = topic.run, []
    for row in topic.all("table4"):
        chosen = topic.first("chosen", preset=row["preset"], regularizer=row["model"])
        wins = None if row["wins"] is None else t("wins_losses", row)
        rows.append(_stats(row).plus(weight=chosen and chosen["weight"], gamma=chosen and chosen["gamma"],
                                     wins_losses=wins))
    paper = [t("paper_value", model=k, roc_auc=v) for k, v in run["paper_table4"].items()]
    details = "".join(t("details", r) for r in topic.all("per_class_table"))
    return t("table4", run, seeds=", ".join(map(str, run["seeds"])), runs=20 * len(run["seeds"]),
             values=", ".join(paper), rows=t.rows("table4_row", rows), details=details)


def table3(t: Template, topic: Topic) -> str:
    """Table III and the estimated cost of the sizes not run."""
    rows = topic.all("table3")
    body = [_stats(r).plus(seed_list=", ".join(map(str, r["seeds"]))) for r in rows]
    seconds = {(r["preset"], r["size"]): r["seconds"] for r in rows}
    estimates = []
    if ("paper", 128) in seconds:
        per_task = 4 * seconds["paper", 128]
        estimates += [t("estimate_paper_256", per_task=per_task, hours=per_task * 60 / 3600),
                      t("estimate_paper_128", hours=seconds["paper", 128] * 60 / 3600)]
    if ("default", 64) in seconds:
        per_task = 4 * seconds["default", 64]
        estimates.append(t("estimate_default_128", per_task=per_task, hours=per_task * 60 / 3600))
    text = t("estimates", estimates="; ".join(estimates)) if estimates else ""
    return t("table3", rows=t.rows("table3_row", body), estimates=text)


def sweep(t: Template, topic: Topic) -> str:
    """The λ/γ sweep: set-up, unit distances, one row per setting, the choice."""
    run = topic.run
    settings = run["sweep"]
    rows = topic.all("sweep")
    ratios = [r["ratio"] for r in rows if r["regularizer"] is not None]
    bottleneck = topic.first("bottleneck")
    median = "" if bottleneck is None else _median(t, bottleneck["median_sq_distance"], settings["gammas"])
    presets = dict.fromkeys(r["preset"] for r in topic.all("chosen"))
    chosen = [t("chosen", preset=p, settings="; ".join(_settings(t, topic.all("chosen", preset=p))))
              for p in presets]
    return t("sweep", run, classes=", ".join(settings["classes"]), n_classes=len(settings["classes"]),
             weights=", ".join(f"{w:g}" for w in settings["weights"]),
             gammas=", ".join(f"{g:g}" for g in settings["gammas"]),
             lowered=100 * (1 - min(ratios, default=1.0)),
             distances=t.rows("distance_row", topic.all("distances")), median=median,
             rows="\n".join(_sweep_row(t, topic, r) for r in rows), chosen="\n".join(chosen),
             minutes=run["sweep_seconds"] / 60)


def _settings(t: Template, chosen: Iterable[Record]) -> list[str]:
    return [t("chosen_setting", c) for c in chosen]


def _median(t: Template, median: float, gammas: list[float]) -> str:
    """What the median squared unit distance makes of each γ's similarity."""
    spread = ", ".join(t("similarity", gamma=g, exponent=g * median, similarity=math.exp(-g * median))
                       for g in gammas)
    return t("median", median=median, spread=spread, vanish=math.exp(-median))


def _sweep_row(t: Template, topic: Topic, row: Record) -> str:
    """One sweep setting; the chosen ones in bold, the probes and the no-regularizer row without a verdict."""
    reg = row["regularizer"] is not None
    pick = topic.first("chosen", preset=row["preset"], regularizer=row["regularizer"]) if reg else None
    mark = not row["probe"] and pick is not None and (pick["weight"], pick["gamma"]) == (row["weight"],
                                                                                         row["gamma"])
    shown = row.plus(weight=row["weight"] if reg else None, gamma=row["gamma"] if reg else None,
                     admissible=row["admissible"] if reg and not row["probe"] else None)
    return t("sweep_row_chosen" if mark else "sweep_row", shown)
