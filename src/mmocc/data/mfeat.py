"""Load the UCI "Multiple Features" handwritten digits: one image view plus feature vectors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmocc.data.dataset import MultiViewDataset

#: Number of features of each mfeat view.
MFEAT_VIEWS = {"pix": 240, "fou": 76, "kar": 64, "fac": 216, "zer": 47, "mor": 6}
#: Shape of one ``pix`` image.
PIX_SHAPE = (1, 16, 15)
_PIX_MAX = 6


def _read_view(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one ``mfeat-<name>.csv``: features and integer labels."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (mfeat view {name!r})")
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a numeric CSV: {exc}") from exc
    if data.shape[1] != MFEAT_VIEWS[name] + 1 or len(data) == 0:
        raise ValueError(
            f"{path}: expected rows of {MFEAT_VIEWS[name]} features and a label, got shape {data.shape}"
        )
    labels = data[:, -1]
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{path}: the last column must hold integer digit labels")
    return data[:, :-1], labels.astype(np.int64)


def load_mfeat(
    root: str | os.PathLike[str], views: Sequence[str] | None = ("pix", "fou")
) -> MultiViewDataset:
    """Load UCI Multiple Features (Duin): 2,000 handwritten digits, six views.

    Reads ``mfeat-<view>.csv`` files (a header row, then one row per sample
    with the label in the last column, the same row order in every file).

    Parameters
    ----------
    root : path-like
        The folder holding the CSV files, e.g. ``"../shared/data/uci-mfeat"``.
    views : sequence of str or None, default ("pix", "fou")
        Views to load, among ``"pix"`` (16x15 pixel averages), ``"fou"``
        (Fourier), ``"kar"`` (Karhunen-Loeve), ``"fac"`` (profile
        correlations), ``"zer"`` (Zernike), ``"mor"`` (morphological);
        None loads all six.

    Returns
    -------
    MultiViewDataset
        ``pix`` as a uint8 ``(n, 1, 16, 15)`` image view: the 0-6 pixel
        averages scaled by 255/6 and rounded, so that it is read like any
        other 8-bit image; the other views as float32 ``(n, d)`` vectors;
        labels = the digit (int).

    Raises
    ------
    FileNotFoundError
        If a view's CSV file is missing.
    ValueError
        For an unknown or repeated view, a malformed file, pixel values
        outside 0-6, or labels that differ between files.
    """
    names = list(MFEAT_VIEWS) if views is None else [views] if isinstance(views, str) else list(views)
    unknown = [name for name in names if name not in MFEAT_VIEWS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"views must be distinct names among {list(MFEAT_VIEWS)}, got {views!r}")
    root = Path(root)
    arrays: dict[str, np.ndarray] = {}
    labels, first = None, None
    for name in names:
        path = root / f"mfeat-{name}.csv"
        features, view_labels = _read_view(path, name)
        if labels is None:
            labels, first = view_labels, path
        elif not np.array_equal(labels, view_labels):
            raise ValueError(f"{path}: labels differ from those of {first} (the files must share row order)")
        if name == "pix":
            if features.min() < 0 or features.max() > _PIX_MAX:
                raise ValueError(f"{path}: pixel values must lie in 0..{_PIX_MAX}")
            arrays[name] = np.rint(features * (255 / _PIX_MAX)).astype(np.uint8).reshape(-1, *PIX_SHAPE)
        else:
            arrays[name] = features.astype(np.float32)
    return MultiViewDataset(arrays, labels=labels)
