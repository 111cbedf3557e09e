"""Render ONNX_PARITY.md from ``results/onnx_parity.json`` (written by ``onnx_parity.py``).

Records: ``run`` (command, date, machine, onnxruntime version) and a ``case``
record per preset and data set (its split sizes, fit and export seconds, file
size, the parity report and the ROC AUC of both sides).
"""

from __future__ import annotations

from render import Record, Topic, template

KINDS = ("score", "view_scores", "parts", "maps")
"""The output kinds of a parity report, in the table's order."""


def _row(case: Record) -> Record:
    """A case with each kind's largest absolute error as a cell (``-`` where the rule has no such output)."""
    errors = case["report"]["max_abs_error"]
    return case.plus(**{kind: f"{errors[kind]:.1e}" if kind in errors else "-" for kind in KINDS})


def render(topic: Topic) -> str:
    """The text of ONNX_PARITY.md: the set-up, then one row per preset and data set."""
    t = template("onnx_parity")
    rows = t.rows("row", [_row(case) for case in topic.all("case")])
    return t("page", topic.run, isa=", ".join(topic.run["machine"]["isa"]), rows=rows)
