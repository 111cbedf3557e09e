"""Render THREADS.md from ``results/threads.json`` (written by ``threads.py``).

Records: ``run`` (command, machine, the workload's data and epochs, repeats,
seconds) and a ``load`` record per number of busy background processes (best
seconds of each variant and their ratios to the 1-thread run).
"""

from __future__ import annotations

from render import Topic, template


def render(topic: Topic) -> str:
    """The text of THREADS.md: the set-up and one row per background load."""
    t = template("threads")
    return t("page", topic.run, rows=t.rows("row", topic.all("load")))
