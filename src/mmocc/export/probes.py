"""Samples for the parity check of an export, made from what the model itself holds.

Without ``--check-data``, :func:`probe_views` builds the samples that
export compares the model and the graph on:

- training samples, where the model keeps them: the input-space memory
  banks of the k-NN rule (the default preset's ``knn_space="both"``) hold
  every training sample scaled to [0, 1], which maps back to raw values;
- smooth random samples drawn from the input scaler's per-channel (or
  per-feature) mean and standard deviation, at several spatial scales;
- blends of the two, which the model scores between normal and anomalous,
  so that some land near the threshold.

Real data (``--check-data``) checks more than these, and the report says
how many samples were scored at or below the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmocc.data.inputs import ViewSpec
from mmocc.export.metadata import input_dtype
from mmocc.scoring import EnsembleScore, KNNScore

BLENDS = (0.05, 0.15, 0.3)
"""Shares of a smooth random sample mixed into a training sample."""


def _knn_rule(rule: Any) -> KNNScore | None:
    """Return the k-NN rule of a model's rule (itself, or a part of ``ensemble``/``combined``), if any."""
    if isinstance(rule, KNNScore):
        return rule
    if isinstance(rule, EnsembleScore):
        for part in rule.parts.values():
            found = _knn_rule(part)
            if found is not None:
                return found
    return None


def training_rows(clf: Any, count: int) -> dict[str, np.ndarray] | None:
    """Up to ``count`` training samples of each view in the [0, 1] scale, from the k-NN input banks.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector.
    count : int
        Samples wanted, spread evenly over the training set.

    Returns
    -------
    dict of str to numpy.ndarray, or None
        The same training samples in every view, shaped as the view; None
        when the model keeps no input-space bank.
    """
    rule = _knn_rule(clf.rule_)
    if rule is None or rule.space not in ("input", "both"):
        return None
    specs: list[ViewSpec] = clf.view_specs_
    widths = [int(np.prod(spec.shape)) for spec in specs]
    out = {}
    for position, spec in enumerate(specs):
        if rule.bank == "joint":
            bank, offset = rule.banks["input:joint"], sum(widths[:position])
            rows = bank[:, offset : offset + widths[position]]
        else:
            key = rule.view_groups[spec.name] if rule.bank == "pooled" else spec.name
            members = [
                v for v in rule.view_groups if (rule.view_groups[v] if rule.bank == "pooled" else v) == key
            ]
            bank = rule.banks[f"input:{key}"]
            size = len(bank) // len(members)
            start = members.index(spec.name) * size
            rows = bank[start : start + size]
        picked = np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int)
        out[spec.name] = rows[picked].reshape(len(picked), *spec.shape).astype(np.float64)
    return out


def _smooth_unit(
    spec: ViewSpec, mean: np.ndarray, std: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Return ``n`` random samples of a view in [0, 1], of the scaler's moments, smooth at random scales."""
    if spec.kind != "image":
        return np.clip(mean + std * rng.standard_normal((n, *spec.shape)), 0.0, 1.0)
    channels, height, width = spec.shape
    out = np.empty((n, channels, height, width))
    for i in range(n):
        cells = 2 ** int(rng.integers(0, 5))  # a grid of 1 to 16 cells a side, upsampled
        grid = rng.standard_normal((channels, cells, cells))
        block = np.ones((1, -(-height // cells), -(-width // cells)))
        out[i] = np.kron(grid, block)[:, :height, :width]
    noise = 0.1 * rng.standard_normal(out.shape)
    return np.clip(mean + std * (out + noise), 0.0, 1.0)


def probe_views(clf: Any, n: int = 48, seed: int = 0) -> dict[str, np.ndarray]:
    """Return ``n`` samples of every view in its raw dtype and scale, for the parity check.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector.
    n : int, default 48
        Samples: a third training samples, a third blends, a third smooth
        random samples when the model keeps training inputs; else all random.
    seed : int, default 0
        Seed of the random samples.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per view, uint8 for views fitted on uint8, else float64.
    """
    rng = np.random.default_rng(seed)
    training = training_rows(clf, max(1, n // 3))
    out = {}
    for spec in clf.view_specs_:
        scaler = clf.model_.scaler(spec.name)
        mean = scaler.mean.detach().cpu().numpy().astype(np.float64)
        std = scaler.std.detach().cpu().numpy().astype(np.float64)
        if training is None:
            unit = _smooth_unit(spec, mean, std, n, rng)
        else:
            rows = training[spec.name]
            synthetic = _smooth_unit(spec, mean, std, n - 2 * len(rows), rng)
            shares = np.resize(np.asarray(BLENDS), len(rows)).reshape(-1, *([1] * len(spec.shape)))
            blends = (1.0 - shares) * rows + shares * synthetic[: len(rows)]
            unit = np.concatenate([rows, blends, synthetic])
        gain = float(scaler.gain.detach().cpu())
        shift = float(scaler.shift.detach().cpu())
        raw = (unit + shift) / gain
        out[spec.name] = (
            np.clip(np.rint(raw), 0, 255).astype(np.uint8) if input_dtype(spec) == "uint8" else raw
        )
    return out
