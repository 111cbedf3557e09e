"""What the approximate bank building and search cost in ROC AUC, against the exact path (issue 21).

Each model is fitted once, exactly (the presets' defaults); then its scoring
rule is rebuilt and refitted on the same features with each approximation
(``coreset_method="cells"``, ``knn_search="projected"``, both), so the
autoencoder and the backbone are shared and only the bank and the search
differ. Tasks, seed 0:

- COIL-20 painted defects (``benchmarks/defects.py``'s ``coil`` tasks, 32 px,
  the 10 normal classes), presets ``patch`` and ``pretrained``: image ROC AUC
  (clean against painted test pairs) and pixel ROC AUC of the painted copies;
- Magnetic-tile protocol (a) (``image_random``, ``benchmarks/real_protocols.py``),
  ``pretrained`` at 64 px: image ROC AUC and pixel ROC AUC at the loaded size.

Usage::

    python benchmarks/approx_quality.py [--coil-classes 10] [--no-mtile]

Prints one Markdown table (mean over tasks, and the largest drop of any task)
and writes ``benchmarks/out/approx_quality.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import DATA, machine
from sklearn.metrics import roc_auc_score

from mmocc import MultimodalOCC
from mmocc.scoring import make_rule
from mmocc.utils.files import write_json

VARIANTS: dict[str, dict[str, str]] = {
    "exact": {},
    "cells": {"coreset_method": "cells"},
    "projected": {"knn_search": "projected"},
    "cells + projected": {"coreset_method": "cells", "knn_search": "projected"},
}
"""The rule options of each compared path."""


def refit_rule(model: MultimodalOCC, train: Any, options: dict[str, str]) -> None:
    """Rebuild the fitted model's scoring rule with ``options`` and fit it on the same training features.

    As ``fit`` does it: the training samples' groups for leave-one-out (no
    threshold hold-out: the presets use ``threshold="train"``).
    """
    from mmocc.detectors.base import sample_groups

    hp = model.params_
    rule = make_rule(
        hp.score,
        center=model.center_,
        view_groups=model.model_.view_group,
        **{**hp.rule_options(), **options},
    )
    views = train if isinstance(train, dict) else train.views
    features = model._features(views, rule.needs, "fit")
    features.sample_groups = sample_groups(getattr(train, "groups", None))
    rule.fit(features)
    model.rule_ = rule


def coil_task(index: int) -> tuple[dict[str, np.ndarray], Any]:
    """Training views of one COIL-20 defect task and a scorer of a fitted model on it."""
    from defects import defect_test

    train, test, broken, batch = defect_test("coil", index, 0, False)
    n = len(batch)

    def score(model: MultimodalOCC) -> dict[str, float]:
        scores = model.decision_function(test)
        y = np.r_[np.zeros(len(scores) - n), np.ones(n)]
        maps = model.anomaly_maps(broken.views)
        shown = [v for v in batch.view_names if v in maps]
        truth = np.concatenate([batch.masks[v].ravel() for v in shown])
        pixel = roc_auc_score(truth, np.concatenate([maps[v].ravel() for v in shown]))
        return {"image": float(roc_auc_score(y, scores)), "pixel": float(pixel)}

    return train.views, score


def mtile_task() -> tuple[dict[str, np.ndarray], Any]:
    """Training views of Magnetic-tile protocol (a) at 64 px, seed 0, and a scorer of a fitted model."""
    from real_protocols import draw, figures, load

    task = draw(load(DATA / "magnetic-tile", "image_random", 64, "stretch", False), "image_random", 0)

    def score(model: MultimodalOCC) -> dict[str, float]:
        scores, views = model.decision_function_by_view(task.test)
        found = figures(task, scores, views, model.anomaly_maps(task.test), "stretch", source=False)
        return {"image": float(found["image_roc_auc"]), "pixel": float(found["pixel_roc_auc_loaded"])}

    return task.train, score


def run_task(name: str, preset: str, train: Any, score: Any) -> list[dict[str, Any]]:
    """Fit one exact model, score it under every variant; one record per variant."""
    model = MultimodalOCC(preset=preset, random_state=0, device="cpu", verbose=False)
    model.fit(train)
    records = []
    for variant, options in VARIANTS.items():
        start = time.perf_counter()
        refit_rule(model, train, options)
        records.append(
            {
                "task": name,
                "preset": preset,
                "variant": variant,
                **score(model),
                "rule_seconds": time.perf_counter() - start,
            }
        )
        print(records[-1], flush=True)
    return records


def table(records: list[dict[str, Any]]) -> str:
    """Mean figures per (tasks, preset, variant) and the largest drop of one task against exact."""
    lines = [
        "| tasks | preset | variant | image ROC AUC | pixel ROC AUC | worst image drop | worst pixel drop |",
        "|:---|:---|:---|---:|---:|---:|---:|",
    ]
    exact = {(r["task"], r["preset"]): r for r in records if r["variant"] == "exact"}
    for group in dict.fromkeys((r["task"].split(":")[0], r["preset"]) for r in records):
        for variant in VARIANTS:
            rows = [
                r
                for r in records
                if (r["task"].split(":")[0], r["preset"]) == group and r["variant"] == variant
            ]
            drops = [
                (
                    exact[(r["task"], r["preset"])]["image"] - r["image"],
                    exact[(r["task"], r["preset"])]["pixel"] - r["pixel"],
                )
                for r in rows
            ]
            lines.append(
                f"| {group[0]} ({len(rows)}) | {group[1]} | {variant} | "
                f"{np.mean([r['image'] for r in rows]):.4f} | {np.mean([r['pixel'] for r in rows]):.4f} | "
                f"{max(d[0] for d in drops):+.4f} | {max(d[1] for d in drops):+.4f} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Run the tasks, print the table, write the records."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coil-classes", type=int, default=10, help="COIL-20 defect tasks (of 10)")
    parser.add_argument("--no-mtile", action="store_true", help="leave out Magnetic-tile protocol (a)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from defects import DEFECT_DATA

    records = []
    if not args.no_mtile:
        train, score = mtile_task()
        records += run_task("mtile (a)", "pretrained", train, score)
    for index in DEFECT_DATA["coil"]["classes"][: args.coil_classes]:
        train, score = coil_task(index)
        for preset in ("patch", "pretrained"):
            records += run_task(f"coil:{index}", preset, train, score)
    print(table(records))
    OUT.mkdir(exist_ok=True)
    write_json(OUT / "approx_quality.json", {"machine": machine(), "records": records})


OUT = Path(__file__).resolve().parent / "out"

if __name__ == "__main__":
    main()
