"""Patch scoring speed: bank build (coreset) time, query throughput and coreset recall, by image size.

For the patch rule (``MultimodalOCC(preset="patch")``: the default autoencoder,
scored by memory banks of its own encoder's local features) on two-view
synthetic bodies (:func:`mmocc.datasets.make_synthetic`, normal class 0, the
rest of the normal class held out, each held-out pair copied with one local
defect painted into one view by :func:`mmocc.data.defects.defect_dataset`),
at 32, 64 and 128 px, with the bank at 1%, 10% and 100% of the training
patches (``coreset_ratio``):

- **coreset (s)**: greedy farthest-point selection of the bank;
- **fit (s)**: coreset plus the leave-one-out standardization (every training
  patch searched against the bank without its own sample's rows);
- **pairs/s**: ``decision_function`` on the test pairs, feature extraction
  and nearest-patch search included;
- **ROC AUC** of clean against defective pairs, and its difference to the full
  bank: the recall the coreset gives up.

A second table compares the nearest-patch search alone on the same banks:
chunked ``torch.cdist`` then ``min`` (the implementation before), blocked
``addmm`` with the bank's squared norms (the torch path now) and faiss's flat L2
index (used when installed). The autoencoder trains for a few epochs only:
the subject is the scoring, not the features. Usage::

    python benchmarks/patch_speed.py            # writes benchmarks/PATCH_SPEED.md (a few minutes)
    python benchmarks/patch_speed.py --quick    # 32 and 64 px only, prints the report
    python benchmarks/patch_speed.py --smoke    # seconds; prints the report only

The records (:func:`measure_records`) go to ``benchmarks/results/patch_speed.json``
and PATCH_SPEED.md is rendered from them (``render_scale.py``); ``speed.py``
puts the same records into SPEED.md.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from bench_common import best_time, command_line, cpu_model, report, run_record

from mmocc import MultimodalOCC, one_class_split
from mmocc.data.defects import defect_dataset
from mmocc.datasets import make_synthetic
from mmocc.metrics import roc_auc
from mmocc.scoring import patch
from mmocc.scoring.patch import PatchScore
from mmocc.search import index as search_index
from mmocc.search.index import NeighborIndex, faiss_module

RATIOS = (0.01, 0.1, 1.0)
TARGET_PAIRS_PER_S = 1000.0
"""Issue 14: at 64 px, with the default bank, on 2 threads."""
LOO_LIMIT = 4e9
"""Leave-one-out distance evaluations (training patches x bank rows) above which a fit is skipped."""
SEARCH_WORK = 3e8
"""Query x bank rows per method in the search comparison (bounds its time)."""


@dataclass(frozen=True)
class Plan:
    """Sizes of one run."""

    sizes: tuple[int, ...]
    n_per_class: int
    train_fraction: float
    epochs: int


PLANS = {
    "smoke": Plan(sizes=(16,), n_per_class=8, train_fraction=0.5, epochs=1),
    "quick": Plan(sizes=(32, 64), n_per_class=40, train_fraction=0.5, epochs=2),
    "full": Plan(sizes=(32, 64, 128), n_per_class=60, train_fraction=0.34, epochs=3),
}


@contextmanager
def timed_coreset(record: list[float]) -> Iterator[None]:
    """Append the wall seconds of every :func:`~mmocc.scoring.patch.greedy_coreset` call to ``record``."""
    original = patch.greedy_coreset

    def timed(points: torch.Tensor, size: int, **options: Any) -> torch.Tensor:
        start = time.perf_counter()
        out = original(points, size, **options)
        record.append(time.perf_counter() - start)
        return out

    patch.greedy_coreset = timed
    try:
        yield
    finally:
        patch.greedy_coreset = original


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, use_faiss: bool) -> torch.Tensor:
    """Return the search engine's nearest-row distances on one exact backend: faiss flat, or torch."""
    policy = search_index.faiss_module
    if not use_faiss:
        search_index.faiss_module = lambda: None  # the policy then picks the torch backend
    try:
        index = NeighborIndex(bank)
    finally:
        search_index.faiss_module = policy
    return index.nearest_distance(queries)


def cdist_nearest(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """The search before: chunks of queries, ``torch.cdist`` to the whole bank (32 MiB), then ``min``."""
    chunk = max(1, 32 * 2**20 // (4 * max(1, len(bank))))
    out = torch.empty(len(queries))
    for start in range(0, len(queries), chunk):
        out[start : start + chunk] = torch.cdist(queries[start : start + chunk], bank).min(dim=1).values
    return out


def defect_task(size: int, plan: Plan) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Training views, test views (clean held-out normals, then their defective copies) and labels."""
    data = make_synthetic(n_per_class=plan.n_per_class, n_classes=2, size=size, seed=0)
    task = one_class_split(data, normal=data.classes[0], train_fraction=plan.train_fraction, seed=0)
    clean = task.test.subset(np.flatnonzero(task.y_test == 0))
    broken, _ = defect_dataset(clean, seed=0, area=(0.01, 0.03))
    test = {v: np.concatenate([clean.views[v], broken.views[v]]) for v in clean.view_names}
    return task.train.views, test, np.r_[np.zeros(len(clean)), np.ones(len(broken))]


def measure_size(size: int, plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of both tables at one image size: per ratio, and per ratio and search method."""
    train, test, labels = defect_task(size, plan)
    clf = MultimodalOCC(
        preset="patch", epochs=plan.epochs, coreset_ratio=RATIOS[0], random_state=0, device="cpu"
    ).fit(train)
    fitted = clf.rule_
    assert isinstance(fitted, PatchScore)
    needs = frozenset({"patch"})
    train_feats = clf._features(train, needs)
    test_feats = clf._features(test, needs)
    n_patches = sum(int(np.prod(m.shape[:1] + m.shape[2:])) for m in train_feats.patches.values())
    queries = torch.cat([patch._as_rows(m) for m in test_feats.patches.values()])
    rows, searches = [], []
    for ratio in RATIOS:
        bank_rows = math.ceil(ratio * n_patches)
        rule = PatchScore(fitted.view_groups, coreset_ratio=ratio)
        row: dict[str, Any] = {"size": size, "ratio": ratio, "train_patches": n_patches, "bank": bank_rows,
                               "fit_s": None, "auc": None}
        if n_patches * bank_rows <= LOO_LIMIT:
            coreset: list[float] = []
            start = time.perf_counter()
            with timed_coreset(coreset):
                rule.fit(train_feats)
            row["fit_s"], row["coreset_s"] = time.perf_counter() - start, sum(coreset)
            clf.rule_ = rule
            seconds = best_time(lambda: clf.decision_function(test), 1, warmup=0)
            row["pairs_per_s"] = len(labels) / seconds
            row["auc"] = roc_auc(labels, clf.decision_function(test))
        else:  # a full-bank fit would take too long: time the coreset and the query path only
            points = torch.cat([patch._as_rows(m) for m in train_feats.patches.values()])
            row["coreset_s"] = best_time(partial(patch.greedy_coreset, points, bank_rows), 1, warmup=0)
            rule.banks = {group: points for group in set(fitted.view_groups.values())}
            rule.mean, rule.std = fitted.mean, fitted.std
            clf.rule_ = rule
            n = max(2, min(len(labels), int(SEARCH_WORK / (bank_rows * len(queries) / len(labels)))))
            subset = {v: x[:n] for v, x in test.items()}
            row["pairs_per_s"] = n / best_time(partial(clf.decision_function, subset), 1, warmup=0)
        rows.append(row)
        bank = next(iter(rule.banks.values()))
        searches.append(search_row(size, ratio, queries, bank))
    clf.rule_ = fitted
    return rows, searches


def search_row(size: int, ratio: float, queries: torch.Tensor, bank: torch.Tensor) -> dict[str, Any]:
    """Queries/s of the three nearest-patch searches against one bank, on at most SEARCH_WORK pairs."""
    q = queries[: max(256, min(len(queries), int(SEARCH_WORK / len(bank))))]
    methods: dict[str, Callable[[], Any]] = {
        "cdist": lambda: cdist_nearest(q, bank),
        "blocked": lambda: nearest_distance(q, bank, use_faiss=False),
    }
    if faiss_module() is not None:
        methods["faiss"] = lambda: nearest_distance(q, bank, use_faiss=True)
    row: dict[str, Any] = {"size": size, "ratio": ratio, "bank": len(bank), "queries": len(q)}
    for name, fn in methods.items():
        row[name] = len(q) / best_time(fn, 2, warmup=0)
    return row


def choose_default(rows: list[dict[str, Any]]) -> tuple[float, float | None]:
    """The smallest ratio whose ROC AUC is within 0.005 of the full bank's at every size measured.

    Returns the ratio and its largest AUC loss against the full bank (None when
    no smaller bank qualifies and the full bank is the default).
    """
    full = {r["size"]: r["auc"] for r in rows if r["ratio"] == 1.0 and r["auc"] is not None}
    for ratio in RATIOS:
        gaps = [full[r["size"]] - r["auc"] for r in rows if r["ratio"] == ratio and r["size"] in full]
        if gaps and max(gaps) <= 0.005:
            return ratio, max(gaps)
    return 1.0, None


def measure_records(smoke: bool = False, quick: bool = False) -> list[dict[str, Any]]:
    """Measure and return the patch-speed records.

    Parameters
    ----------
    smoke : bool, default False
        Tiny data at 16 px (seconds).
    quick : bool, default False
        32 and 64 px on smaller data.

    Returns
    -------
    list of dict
        ``patch_setup`` (command, mode, machine, data, the default bank and its
        AUC loss), a ``patch`` record per size and bank (patches, bank rows,
        coreset and fit seconds, pairs/s, ROC AUC and its difference to the full
        bank; None where a fit was skipped) and a ``patch_search`` record per
        size and bank (queries/s of each search method and their ratios to cdist).
    """
    mode = "smoke" if smoke else "quick" if quick else "full"
    plan = PLANS[mode]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    for size in plan.sizes:
        more_rows, more_searches = measure_size(size, plan)
        rows += more_rows
        searches += more_searches
    default, gap = choose_default(rows)
    full = {r["size"]: r["auc"] for r in rows if r["ratio"] == 1.0 and r["auc"] is not None}
    for r in rows:
        r["auc_gap"] = None if r["auc"] is None or r["size"] not in full else r["auc"] - full[r["size"]]
    for q in searches:
        q["blocked_vs_cdist"] = q["blocked"] / q["cdist"]
        if "faiss" in q:
            q["faiss_vs_cdist"] = q["faiss"] / q["cdist"]
    faiss = faiss_module()
    setup = {"kind": "patch_setup", "command": command_line("patch_speed.py"), "mode": mode,
             "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
             "threads": torch.get_num_threads(), "faiss": None if faiss is None else faiss.__version__,
             "load_before": load_before, "load_after": os.getloadavg()[0], "n_per_class": plan.n_per_class,
             "train_fraction": plan.train_fraction, "epochs": plan.epochs,
             "seconds": time.perf_counter() - started, "loo_limit": LOO_LIMIT,
             "target_pairs_per_s": TARGET_PAIRS_PER_S, "default_ratio": default, "default_gap": gap}
    return [setup, *({"kind": "patch", **r} for r in rows),
            *({"kind": "patch_search", **q} for q in searches)]


def main() -> None:
    """Run the benchmark and print the report; a full run also saves it and writes PATCH_SPEED.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data, 16 px; print only")
    parser.add_argument("--quick", action="store_true", help="32 and 64 px on smaller data; print only")
    options = parser.parse_args()
    records = [run_record("patch_speed", command_line("patch_speed.py")),
               *measure_records(smoke=options.smoke, quick=options.quick)]
    print(report("patch_speed", records, write=not (options.smoke or options.quick)))


if __name__ == "__main__":
    main()
