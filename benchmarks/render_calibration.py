"""Render CALIBRATION.md from ``results/calibration.json`` (written by ``calibration.py``).

Records: ``run`` (command, date, wall ``seconds`` or None, machine, seeds,
workers, contamination, calibration_fraction, validation_fraction), then per
protocol a ``protocol`` record (title; ``n_records`` tasks × seeds and the sizes
of the first task; ``holdout_beats_train``, the share of tasks × seeds where
(b) has the higher normal recall; ``roc_auc_gap``, the largest ROC AUC
difference of (a) and (c)) and three ``variant`` records (``train``,
``holdout``, ``calibrate``: ``mean`` and ``worst`` of each metric over tasks
and seeds, mean ``n_reference``, ``expected_normal_recall`` and ``seconds``).
"""

from __future__ import annotations

from render import Record, Template, Topic, template

VARIANTS = ("train", "holdout", "calibrate")


def render(topic: Topic) -> str:
    """The text of CALIBRATION.md: header, recall summary, findings and a table per protocol."""
    t = template("calibration")
    run = topic.run
    protocols = topic.all("protocol")
    variants = [_variants(topic, p) for p in protocols]
    wall = t("untimed") if run["seconds"] is None else t("timed", minutes=run["seconds"] / 60,
                                                          seconds=run["seconds"])
    tables = ""
    if protocols:
        tables = t("recall", rows=t.rows("recall_row", variants),
                   findings="".join(t("finding", v) for v in variants))
        tables += "".join(_protocol(t, run, v) for v in variants)
    return t("page", run, wall=wall, pass_share=1 - run["contamination"],
             fit_share=1 - run["validation_fraction"], sizes="".join(t("size", p) for p in protocols),
             tables=tables)


def _variants(topic: Topic, protocol: Record) -> Record:
    """The protocol record with its three variant records added, by variant name."""
    found = {v: topic.one("variant", protocol=protocol["protocol"], variant=v) for v in VARIANTS}
    return protocol.plus(**found)


def _protocol(t: Template, run: Record, protocol: Record) -> str:
    """A protocol's table: one row per threshold source."""
    rows = [protocol[v].plus(label=t(v, run)) for v in VARIANTS]
    return t("protocol", protocol, rows=t.rows("variant_row", rows))
