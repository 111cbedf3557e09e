"""Render SPEED.md from ``results/speed.json`` (written by ``speed.py``).

Records of speed.py's own sections: ``run`` (command, mode, machine,
``complete``, ``seconds``, the load and busy processes at the end,
``targets``); ``matmul`` (the reference limit with all threads and one);
``flops``; ``training`` (one per path: ``fit``, ``fit_1_thread`` and the
training variants), ``training_setup``, ``centre``; ``profile``; ``scoring``
(one per size and path); ``setting`` (one per setting of the settings table);
``task`` (one per detector), ``task_setup``, ``fixed_costs`` or
``task_skipped``; ``coil_setup``, ``coil`` (the reference and the mmocc rows)
or ``coil_skipped``. The sections of the scale scripts (and of ``onnx_speed.py``) come from
:mod:`render_scale`. Sections render when their records exist; a run that has
not finished (``complete`` False) ends with a line saying so.
"""

from __future__ import annotations

from collections.abc import Callable

from render import Record, Template, Topic, renderer, template

scale = renderer("render_scale")


def render(topic: Topic) -> str:
    """The text of SPEED.md: its sections joined by an empty line."""
    t = template("speed")
    run = topic.run
    sections = [t("title", run, smoke=t("smoke") if run["mode"] == "smoke" else "")]
    parts: list[tuple[str, Callable[[Template, Topic], str]]] = [
        ("matmul", machine), ("training", training), ("profile", profile), ("scoring", scoring),
        ("setting", settings), ("task_setup", task), ("coil_setup", coil), ("scoring", targets),
    ]
    sections += [section(t, topic) for kind, section in parts if topic.first(kind) is not None]
    for kind, section in (("knn_setup", scale.knn), ("patch_setup", scale.patch),
                          ("streaming", scale.streaming), ("cluster_setup", scale.cluster),
                          ("onnx_setup", scale.onnx), ("headline_setup", scale.headline)):
        if topic.first(kind) is not None:
            sections.append(section(topic))
    if run["complete"]:
        busy = t("busy_end", run) if run["busy_end"] else ""
        sections += [t("notes"), t("end", run, busy=busy)]
    else:
        sections.append(t("incomplete"))
    return "\n\n".join(sections)


def machine(t: Template, topic: Topic) -> str:
    """The machine and its matmul limit."""
    run = topic.run
    busy = run["machine"]["busy"]
    loaded = t("loaded", busy=len(busy)) if busy else ""
    return t("machine", topic.one("matmul"), machine=run["machine"], isa=", ".join(run["machine"]["isa"]),
             loaded=loaded)


def training(t: Template, topic: Topic) -> str:
    """Training throughput rows, the bf16 note and the centre initialisation."""
    flops = topic.one("flops")
    rows = []
    for row in topic.all("training"):
        block = {"fit": "training_fit", "fit_1_thread": "training_fit_1"}.get(row["path"], "training_variant")
        rows.append(t(block, row))
    return t("training", topic.one("centre"), setup=topic.one("training_setup"),
             encoder_mflop=flops["encoder"] / 1e6, decoder_mflop=flops["decoder"] / 1e6,
             per_pair_mflop=flops["per_pair"] / 1e6, ms_per_pair=flops["ms_per_pair"], rows="\n".join(rows))


def profile(t: Template, topic: Topic) -> str:
    """The top operators of one training epoch."""
    record = topic.one("profile")
    return t("profile", record, rows=t.rows("profile_row", record["operators"]))


def scoring(t: Template, topic: Topic) -> str:
    """Scoring paths by image size."""
    return t("scoring", rows=t.rows("scoring_row", topic.all("scoring")))


def settings(t: Template, topic: Topic) -> str:
    """Other scoring settings at 32x32."""
    return t("settings", rows="\n".join(t(f"setting_{r['setting']}", r) for r in topic.all("setting")))


def task(t: Template, topic: Topic) -> str:
    """One COIL-20 task against PyOD, and the fixed per-process costs."""
    skipped = topic.first("task_skipped")
    if skipped is not None:
        return t("task_skipped", skipped)
    rows = [r.plus(label=t(f"task_{r['detector']}")) for r in topic.all("task")]
    return t("task", topic.one("task_setup"), rows=t.rows("task_row", rows), fixed=topic.one("fixed_costs"))


def _rocs(row: Record) -> str:
    return " / ".join(f"{v:.3f}" for v in row["roc_auc"])


def coil(t: Template, topic: Topic) -> str:
    """The COIL-20 paper protocol against the eager reference."""
    setup = topic.one("coil_setup")
    if topic.first("coil_skipped") is not None:
        return t("coil_skipped", topic.one("coil_skipped"), tasks=setup["tasks"])
    rows = [t(f"coil_{r['implementation']}", r, rocs=_rocs(r)) for r in topic.all("coil")]
    return t("coil", setup, rows="\n".join(rows), models=3 * setup["tasks"])


def targets(t: Template, topic: Topic) -> str:
    """The targets of issue 14 that this script measures, against ``run["targets"]``."""
    goals = topic.run["targets"]
    rows = []
    default = topic.first("task", detector="default")
    if default is not None:
        rows.append(t("target_task", targets=goals, ratio=default["vs_knn"],
                      met=default["vs_knn"] <= goals["task_vs_knn"]))
    one = topic.first("coil", implementation="mmocc", processes=1)
    if one is not None:
        rows.append(t("target_coil", targets=goals, ratio=one["vs_reference"],
                      met=one["vs_reference"] >= goals["coil_ratio"]))
    rows.append(t("target_threads"))
    score = topic.all("scoring", size=32)[-1]["share"]
    rows.append(t("target_scoring", targets=goals, share=score, met=score >= goals["scoring"]))
    train = topic.one("training", path="fit")["share"]
    rows.append(t("target_training", targets=goals, share=train, met=train >= goals["training"]))
    return t("targets", rows="\n".join(rows))
