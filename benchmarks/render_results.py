"""Render RESULTS.md from ``results/results.json`` (written by ``run_benchmarks.py``).

Records: ``run`` (command, machine, seeds, design_seeds, contamination), then
per finished job a ``protocol`` (study ``main`` or ``design``, name, title)
followed by its ``row`` records (one per model: a :func:`bench_common.spread`
of ``roc_auc``, ``worst_roc_auc``, ``p_at_n``, ``anomaly_recall`` and
``normal_recall``, and mean ``seconds`` per task).
"""

from __future__ import annotations

from render import Record, Template, Topic, bold, mean_std, template

STATS = ("roc_auc", "worst_roc_auc", "p_at_n", "anomaly_recall", "normal_recall")
"""The row fields shown as mean ± std over seeds."""
UNIMODAL = ("default_view0", "default_view1")


def render(topic: Topic) -> str:
    """The text of RESULTS.md: the hand-written template around the side-by-side and design tables."""
    t = template("results")
    run = topic.run
    main = "".join(_protocol(t, topic, p, "protocol") for p in topic.all("protocol", study="main"))
    design = [_protocol(t, topic, p, "design_protocol") for p in topic.all("protocol", study="design")]
    design_text = t("design", run, protocols="".join(design)) if design else ""
    return t("page", run, protocols=main, design=design_text)


def _protocol(t: Template, topic: Topic, protocol: Record, block: str) -> str:
    """One protocol's section: title, the verdict line (side-by-side table only) and the table."""
    rows = topic.all("row", study=protocol["study"], protocol=protocol["protocol"])
    body = t.rows("row", [row.plus(model=bold(row["model"], row["model"].startswith("default")),
                                   **{key: mean_std(row[key]) for key in STATS}) for row in rows])
    return t(block, protocol, rows=body, verdict=verdict(t, rows))


def verdict(t: Template, rows: list[Record]) -> str:
    """Does the default multimodal beat every baseline and its unimodal variants? Empty without the rows."""
    means = {row["model"]: row["roc_auc"]["mean"] for row in rows}
    baselines = {m: v for m, v in means.items() if not m.startswith(("default", "paper"))}
    if not baselines or not {"default_multimodal", *UNIMODAL} <= set(means):
        return ""
    ours = means["default_multimodal"]
    best = max(baselines, key=lambda m: baselines[m])
    unimodal = max(means[m] for m in UNIMODAL)
    return t("verdict", ours=ours, best=best, best_roc_auc=baselines[best], unimodal=unimodal,
             beats_baseline=ours > baselines[best], beats_unimodal=ours > unimodal)
