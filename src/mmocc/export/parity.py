"""Parity of an export with its model: every output compared, within stated tolerances.

:func:`compare` takes the outputs of the PyTorch model and of the ONNX
graph on the same samples, named as the graph names them, and returns a
:class:`ParityReport`: the largest absolute and relative error of each
output kind (scores, view scores, part scores, maps), the decisions that
differ, and whether all of it is within tolerance. A score passes when
``|exported - reference| <= atol + rtol * |reference|`` (numpy's
``isclose``); a map value when ``|exported - reference| <= atol + rtol *
m``, with ``m`` the largest ``|reference|`` of that sample's map: a map's
error is judged against its peaks, not against the values near zero between
them, where float32 rounding of a deep backbone is larger than ``rtol``
times the value. A decision may differ only where the reference score lies
within the score tolerance of the threshold (a tie).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

RTOL = 1e-4
"""Default relative tolerance of the parity check."""

ATOL = 1e-5
"""Default absolute tolerance of the parity check."""


@dataclass(frozen=True)
class ParityReport:
    """How far an export's outputs are from its model's on a set of samples.

    Attributes
    ----------
    samples : int
        Samples compared.
    origin : str
        Where they come from (``"probes"``, or the ``--check-data`` source).
    rtol, atol : float
        The tolerances.
    max_abs_error, max_rel_error : dict of str to float
        Per output kind (``score``, ``view_scores``, ``parts``, ``maps``),
        the largest error over every element.
    decisions_differ : int
        Samples whose ``is_anomaly`` differs.
    ties : int
        Of those, the ones whose reference score is within tolerance of the threshold (allowed).
    normal : int
        Samples the model scores at or below the threshold (how many the
        decision check saw on the normal side).
    failures : list of str
        What is out of tolerance; empty when the export passes.
    """

    samples: int
    origin: str
    rtol: float
    atol: float
    max_abs_error: dict[str, float] = field(default_factory=dict)
    max_rel_error: dict[str, float] = field(default_factory=dict)
    decisions_differ: int = 0
    ties: int = 0
    normal: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every output is within tolerance and every decision agrees but ties."""
        return not self.failures

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ParityReport:
        """Rebuild a report from :meth:`to_dict` output (as an export's metadata stores it)."""
        names = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable values, with ``passed``."""
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """One line per output kind, then the decisions and the verdict."""
        lines = [f"parity on {self.samples} samples ({self.origin}), rtol {self.rtol:g}, atol {self.atol:g}:"]
        for kind, error in self.max_abs_error.items():
            lines.append(f"  {kind}: max abs error {error:.3g}, max rel error {self.max_rel_error[kind]:.3g}")
        lines.append(
            f"  is_anomaly: {self.decisions_differ} differ ({self.ties} ties at the threshold); "
            f"{self.normal} of {self.samples} samples at or below it"
        )
        lines.append("  passed" if self.passed else "  FAILED: " + "; ".join(self.failures))
        return "\n".join(lines)


def _errors(reference: np.ndarray, exported: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Largest absolute and relative error, and the absolute errors (inf where one side is not finite)."""
    ref, got = np.asarray(reference, dtype=np.float64), np.asarray(exported, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: {ref.shape} and {got.shape}")
    diff = np.abs(got - ref)
    diff[~(np.isfinite(ref) & np.isfinite(got))] = np.inf
    if not diff.size:
        return 0.0, 0.0, diff
    rel = diff / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    return float(diff.max()), float(rel.max()), diff


def _scale(reference: np.ndarray, whole_sample: bool) -> np.ndarray:
    """Return what ``rtol`` multiplies: each value's magnitude, or for maps the sample's largest one."""
    magnitude = np.abs(np.asarray(reference, dtype=np.float64))
    if not whole_sample or not magnitude.size:
        return magnitude
    return np.max(magnitude.reshape(len(magnitude), -1), axis=1).reshape(-1, *[1] * (magnitude.ndim - 1))


def compare(
    reference: Mapping[str, np.ndarray],
    exported: Mapping[str, np.ndarray],
    outputs: Mapping[str, Any],
    threshold: float,
    *,
    origin: str,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> ParityReport:
    """Compare the model's outputs with the graph's.

    Parameters
    ----------
    reference, exported : mapping of str to numpy.ndarray
        The outputs of the model and of the graph, by output name.
    outputs : mapping
        The graph's output names (:attr:`mmocc.export.metadata.ExportInfo.outputs`).
    threshold : float
        The model's threshold.
    origin : str
        Where the samples come from, for the report.
    rtol, atol : float
        The tolerances.

    Returns
    -------
    ParityReport
        The errors and verdict.
    """
    kinds = {
        "score": [outputs["score"]],
        "view_scores": list(outputs["views"].values()),
        "parts": list(outputs["parts"].values()),
        "maps": list(outputs["maps"].values()),
    }
    max_abs: dict[str, float] = {}
    max_rel: dict[str, float] = {}
    failures = []
    for kind, names in kinds.items():
        if not names:
            continue
        max_abs[kind] = max_rel[kind] = 0.0
        for name in names:
            try:
                abs_error, rel_error, diff = _errors(reference[name], exported[name])
            except ValueError as exc:
                failures.append(f"{name}: {exc}")
                continue
            max_abs[kind], max_rel[kind] = max(max_abs[kind], abs_error), max(max_rel[kind], rel_error)
            outside = int((diff > atol + rtol * _scale(reference[name], kind == "maps")).sum())
            if outside:
                failures.append(
                    f"{name}: {outside} of {diff.size} values out of tolerance (max {abs_error:.3g})"
                )
    score = np.asarray(reference[outputs["score"]], dtype=np.float64)
    differ = np.asarray(reference[outputs["is_anomaly"]]).astype(bool) != np.asarray(
        exported[outputs["is_anomaly"]]
    ).astype(bool)
    tie = np.abs(score - threshold) <= atol + rtol * abs(threshold)
    if (differ & ~tie).any():
        failures.append(f"is_anomaly: {int((differ & ~tie).sum())} decisions differ away from the threshold")
    return ParityReport(
        samples=len(score),
        origin=origin,
        rtol=rtol,
        atol=atol,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        decisions_differ=int(differ.sum()),
        ties=int((differ & tie).sum()),
        normal=int((score <= threshold).sum()),
        failures=failures,
    )
