"""kNN at scale: the k-NN part of fit (leave-one-out on the banks) and of scoring, old against new.

The default preset's ``knn`` score (``knn_bank="pooled"``, ``knn_space="both"``,
k = 5) keeps, for two views sharing an encoder, an input-space bank of
``2 * n_train`` rows of 3,072 dimensions (32 px RGB scaled to [0, 1]) and a
latent bank of ``2 * n_train`` rows of ``vector_latent`` dimensions. This
script times :class:`mmocc.scoring.KNNScore` on such banks, side by side in
one run:

- ``old``: scikit-learn ``NearestNeighbors(algorithm="brute")``, asking for
  ``k + 1`` neighbours in leave-one-out and dropping the first (the code before);
- ``exact``: blocked matmul + top-k with exact recomputation (``knn_search="exact"``);
- ``approximate``: faiss HNSW (``knn_search="approximate"``);
- ``projected``: the bank's 64 principal components rank the candidates, the
  best ``k + 32`` are re-ranked exactly (``knn_search="projected"``).

Inputs are rendered procedural animals (:func:`mmocc.data.synthetic.make_synthetic`,
32 px): a pool of rendered pairs is cycled with fresh pixel noise (sigma 0.02)
to reach the bank and test sizes, so every row is distinct while rendering
stays cheap; test pairs are half normal (class 0), half anomalous (class 1).
Latents are a fixed random projection of the inputs. Scoring runs in batches
of 1,024 pairs, as the detector does. ``old`` and ``exact`` score only the
first ``--measure`` test pairs and are extrapolated linearly to ``n_test``;
``approximate`` and ``projected`` score all of them. Usage::

    python benchmarks/knn_scale.py            # n_train 16,000, n_test 100,000; writes benchmarks/KNN.md
    python benchmarks/knn_scale.py --quick    # n_train 4,000, n_test 20,000; prints only
    python benchmarks/knn_scale.py --smoke    # seconds; prints only

The records (:func:`measure_records`) go to ``benchmarks/results/knn.json`` and
KNN.md is rendered from them (``render_scale.py``); ``speed.py`` puts the same
records into SPEED.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from bench_common import RESULTS, command_line, cpu_model, report, run_record, splice, torch_threads
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from mmocc.data.synthetic import make_synthetic
from mmocc.model.hyperparams import DEFAULT
from mmocc.scoring import Features, KNNScore
from mmocc.search.index import NeighborIndex

GROUPS = {"dorsal": "g", "lateral": "g"}
BATCH = 1024
TARGET_S = 60.0
"""Issue 14's target for the k-NN part of fit + score at n_train 16,000, n_test 100,000, on 2 cores."""


class SklearnIndex:
    """The search before: scikit-learn brute force, the query itself assumed to come back first."""

    def __init__(self, bank: np.ndarray) -> None:
        self.index = NearestNeighbors(algorithm="brute").fit(bank)
        self.rows = len(bank)

    def __len__(self) -> int:
        return self.rows

    def mean_distance(self, queries: np.ndarray, k: int, self_index: np.ndarray | None = None) -> np.ndarray:
        """Mean distance to the ``k`` nearest rows, dropping the first neighbour in leave-one-out."""
        skip = int(self_index is not None)
        dist, _ = self.index.kneighbors(np.asarray(queries, dtype=np.float32), n_neighbors=k + skip)
        return dist[:, skip:].mean(axis=1).astype(np.float64)


class OldKNNScore(KNNScore):
    """:class:`KNNScore` searching as the code before did."""

    def _index(self, key: str) -> NeighborIndex:
        if key not in self._indexes:
            self._indexes[key] = SklearnIndex(self.banks[key])  # type: ignore[assignment]
        return self._indexes[key]


@dataclass
class Data:
    """Rendered pools, a latent projection and the noise that makes each drawn row distinct."""

    normal: np.ndarray
    anomalous: np.ndarray
    projection: np.ndarray

    def draw(self, pool: np.ndarray, n: int, seed: int) -> Features:
        """``n`` pairs cycled from ``pool`` with fresh noise, as input and latent features."""
        rng = np.random.default_rng(seed)
        rows = pool[np.arange(n) % len(pool)]
        views = np.clip(rows + rng.normal(0, 0.02, rows.shape).astype(np.float32), 0, 1)
        inputs = {view: views[:, i] for i, view in enumerate(GROUPS)}
        latents = {view: x @ self.projection for view, x in inputs.items()}
        return Features(latents=latents, inputs=inputs)

    def test_batch(self, start: int, n: int) -> tuple[Features, np.ndarray]:
        """Test pairs ``start .. start + n``: even positions normal, odd anomalous."""
        half = (n + 1) // 2
        normal = self.draw(np.roll(self.normal, -start // 2, axis=0), half, seed=10_000 + start)
        anomalous = self.draw(np.roll(self.anomalous, -start // 2, axis=0), n - half, seed=20_000 + start)
        order = np.argsort(np.r_[2 * np.arange(half), 2 * np.arange(n - half) + 1])
        feats = Features(
            latents={v: np.concatenate([normal.latents[v], anomalous.latents[v]])[order] for v in GROUPS},
            inputs={v: np.concatenate([normal.inputs[v], anomalous.inputs[v]])[order] for v in GROUPS},
        )
        return feats, np.r_[np.zeros(half), np.ones(n - half)][order]


def make_data(pool: int) -> Data:
    """Render ``pool`` normal and ``pool // 4`` anomalous pairs at 32 px."""
    ds = make_synthetic(n_per_class=pool, n_classes=2, size=32, seed=0)
    stacked = np.stack([ds.views[v] for v in ds.view_names], axis=1).reshape(len(ds), 2, -1)
    scaled = stacked.astype(np.float32) / 255.0
    labels = np.asarray(ds.labels)
    rng = np.random.default_rng(1)
    projection = (rng.normal(size=(scaled.shape[2], DEFAULT.vector_latent)) / 40).astype(np.float32)
    return Data(scaled[labels == 0], scaled[labels == 1][: max(1, pool // 4)], projection)


def run(rule: KNNScore, data: Data, train: Features, n_test: int, n_probe: int) -> dict[str, Any]:
    """Fit (leave-one-out) and score ``n_test`` pairs in batches.

    Returns the seconds, the scores and labels, and the raw k-NN distances of
    the training pairs (leave-one-out) and of the first ``n_probe`` test pairs.
    """
    start = time.perf_counter()
    rule.fit(train)
    fit_s = time.perf_counter() - start
    scores, labels, seconds = [], [], 0.0
    for first in range(0, n_test, BATCH):
        feats, y = data.test_batch(first, min(BATCH, n_test - first))
        start = time.perf_counter()
        scores.append(rule.score(feats))
        seconds += time.perf_counter() - start
        labels.append(y)
    probe, _ = data.test_batch(0, n_probe)
    raw_train, _, _ = rule._raw(train, leave_self_out=True)
    raw_test, _, _ = rule._raw(probe, leave_self_out=False)
    return {
        "fit_s": fit_s,
        "score_s": seconds,
        "raw": np.concatenate([raw_train.ravel(), raw_test.ravel()]),
        "scores": np.concatenate(scores),
        "labels": np.concatenate(labels),
    }


FULL = ("approximate", "projected")
"""The searches that score every test pair (the others are extrapolated)."""


def recall(rule: KNNScore, exact: KNNScore, data: Data, k: int) -> float:
    """Recall@k of an approximate input-space search against the exact one, on up to 1,024 test pairs."""
    probe, _ = data.test_batch(0, BATCH)
    queries = np.concatenate(list(probe.inputs.values()))
    _, got = rule._index("input:g").kneighbors(queries, k)
    _, want = exact._index("input:g").kneighbors(queries, k)
    return float(np.mean([len(set(g) & set(w)) / k for g, w in zip(got, want, strict=True)]))


def measure(n_train: int, n_test: int, n_measure: int) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Time the four searches; per mode its figures, and the accuracy figures."""
    data = make_data(min(n_train, 4000))
    train = data.draw(data.normal, n_train, seed=0)
    n_measure = min(n_measure, n_test)
    k = DEFAULT.n_neighbors
    rules = {
        "old": OldKNNScore(k, "pooled", "both", GROUPS),
        "exact": KNNScore(k, "pooled", "both", GROUPS, "exact"),
        "approximate": KNNScore(k, "pooled", "both", GROUPS, "approximate"),
        "projected": KNNScore(k, "pooled", "both", GROUPS, "projected"),
    }
    n_probe = min(BATCH, n_measure)
    out = {
        name: run(rule, data, train, n_test if name in FULL else n_measure, n_probe)
        for name, rule in rules.items()
    }
    for name, result in out.items():
        scored = n_test if name in FULL else n_measure
        result["score_full_s"] = result["score_s"] * n_test / scored
        result["total_s"] = result["fit_s"] + result["score_full_s"]
        m = min(n_measure, len(result["scores"]))
        result["roc"] = float(roc_auc_score(result["labels"][:m], result["scores"][:m]))
    old, exact, approx, projected = (out[name]["raw"] for name in ("old", "exact", *FULL))
    accuracy = {
        "exact_vs_old": float(np.max(np.abs(exact / old - 1))),
        "approximate_vs_exact": float(np.max(np.abs(approx / exact - 1))),
        "recall": recall(rules["approximate"], rules["exact"], data, k),
        "projected_vs_exact": float(np.max(np.abs(projected / exact - 1))),
        "projected_recall": recall(rules["projected"], rules["exact"], data, k),
    }
    return out, accuracy


def measure_records(smoke: bool = False, quick: bool = False) -> list[dict[str, Any]]:
    """Run the benchmark and return its records.

    Parameters
    ----------
    smoke : bool, default False
        Tiny sizes (seconds), for a check that the script runs.
    quick : bool, default False
        n_train 4,000 and n_test 20,000 instead of 16,000 and 100,000.

    Returns
    -------
    list of dict
        ``knn_setup`` (command, mode, machine, sizes, seconds, target), a
        ``knn`` record per search (fit and score seconds, the pairs scored, the
        total, the speed-up over ``old``, ROC AUC) and ``knn_accuracy``.
    """
    n_train, n_test, n_measure = (300, 2000, 500) if smoke else (4000, 20_000, 2048) if quick else (
        16_000, 100_000, 2048)
    threads = 2
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with torch_threads(threads):
        out, accuracy = measure(n_train, n_test, n_measure)
    rows = [{"kind": "knn", "search": name, "fit_s": result["fit_s"], "score_s": result["score_full_s"],
             "scored": n_test if name in FULL else min(n_measure, n_test),
             "total_s": result["total_s"], "speedup": out["old"]["total_s"] / result["total_s"],
             "roc_auc": result["roc"]} for name, result in out.items()]
    mode = "smoke" if smoke else "quick" if quick else "full"
    command = command_line("knn_scale.py", [] if mode == "full" else [f"--{mode}"])
    setup = {"kind": "knn_setup", "command": command, "mode": mode, "cpu": cpu_model(),
             "cores": os.cpu_count(), "torch": torch.__version__, "threads": threads,
             "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"), "load_start": load,
             "load_end": os.getloadavg()[0], "k": DEFAULT.n_neighbors, "n_train": n_train,
             "latent": DEFAULT.vector_latent, "n_test": n_test, "n_measure": n_measure,
             "seconds": time.perf_counter() - started, "target_s": TARGET_S}
    return [setup, *rows, {"kind": "knn_accuracy", **accuracy, "probe": min(BATCH, n_measure)}]


def main() -> None:
    """Print the report; a full run also saves the records and writes KNN.md and SPEED.md's kNN section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, print only")
    parser.add_argument("--quick", action="store_true", help="n_train 4,000, n_test 20,000, print only")
    parser.add_argument("--splice", action="store_true",
                        help="only put the saved records (results/knn.json) into SPEED.md's kNN section")
    options = parser.parse_args()
    if options.splice:
        saved = json.loads((RESULTS / "knn.json").read_text(encoding="utf-8"))
        print(splice("speed", [r for r in saved if r["kind"] != "run"]))
        return
    measured = measure_records(smoke=options.smoke, quick=options.quick)
    write = not (options.smoke or options.quick)
    print(report("knn", [run_record("knn", command_line("knn_scale.py")), *measured], write=write))
    if write:
        splice("speed", measured)


if __name__ == "__main__":
    main()
