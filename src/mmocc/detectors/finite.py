"""Finite features and scores: a NaN or infinite value is an error that names the view and counts the samples.

Inputs are checked when they arrive (:func:`mmocc.data.inputs.check_views`),
but a network can still produce NaN or infinite values from finite input:
training that diverged, or a user's ``patch_backbone`` that returns NaN for
some images. A NaN score compares false with any threshold, and a NaN in a
memory bank drops out of a nearest-neighbour search, so such values would
pass silently as "normal" (or set ``threshold_`` to NaN or infinity). These
checks make them an error at fit, calibration and scoring. Each is one
vectorised pass over arrays the detector already holds.

Examples
--------
>>> import numpy as np
>>> check_finite_scores(np.array([0.5, np.nan, 1.0]), {}, ["left"], "scoring")
Traceback (most recent call last):
...
ValueError: scoring: the score of 1 of 3 samples (first: sample 1) is NaN or infinite (views ['left'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mmocc.scoring import Features


def _bad_rows(array: np.ndarray) -> np.ndarray:
    """Return which rows (samples) of an array hold a NaN or infinite value."""
    finite = np.isfinite(array)
    return ~(finite if finite.ndim == 1 else finite.reshape(len(array), -1).all(axis=1))


def _counted(bad: np.ndarray, start: int, total: int) -> str:
    """Say how many of the samples ``start:start + len(bad)`` of ``total`` are bad, and the first one."""
    of = f"{total} samples" if len(bad) == total else f"the {len(bad)} samples {start}-{start + len(bad) - 1}"
    return f"{int(bad.sum())} of {of} (first: sample {start + int(np.argmax(bad))})"


def check_finite_features(features: Features, start: int, total: int, action: str) -> None:
    """Raise if any feature of a batch of samples is NaN or infinite, naming the view.

    Parameters
    ----------
    features : mmocc.scoring.Features
        The features of samples ``start`` to ``start + features.n - 1``.
    start : int
        The index of the batch's first sample.
    total : int
        The number of samples being processed, for the message.
    action : str
        What was being done (``"fit"``, ``"scoring"``, ...), for the message.

    Raises
    ------
    ValueError
        Naming the first view with a non-finite feature, how many samples
        of the batch have one and the first of them.
    """
    for group in (features.latents, features.inputs, features.recons, features.recon_maps, features.patches):
        for view, array in group.items():
            bad = _bad_rows(array)
            if bad.any():
                raise ValueError(
                    f"{action}: view {view!r}: the features of {_counted(bad, start, total)} are NaN or "
                    "infinite; the model gives non-finite values for them (a patch_backbone returning "
                    "NaN, or training that diverged)"
                )


def check_finite_scores(
    scores: np.ndarray, by_view: Mapping[str, np.ndarray], views: Sequence[str], action: str
) -> None:
    """Raise if any score is NaN or infinite, naming the view it comes from where it is known.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        The anomaly scores.
    by_view : mapping of str to numpy.ndarray
        Per-view scores of the same samples (may be empty).
    views : sequence of str
        The views the scores were computed from, named when no per-view
        score tells which one failed.
    action : str
        What was being done, for the message.

    Raises
    ------
    ValueError
        Naming the view (or views), how many samples have a non-finite
        score and the first of them.
    """
    for view, values in by_view.items():
        bad = _bad_rows(np.asarray(values))
        if bad.any():
            raise ValueError(
                f"{action}: view {view!r}: the score of {_counted(bad, 0, len(bad))} is NaN or infinite"
            )
    bad = _bad_rows(np.asarray(scores))
    if bad.any():
        raise ValueError(
            f"{action}: the score of {_counted(bad, 0, len(bad))} is NaN or infinite (views {list(views)})"
        )
