"""Behaviour fixture: both presets give the scores they gave before the restructuring.

``tests/regression/scores.npz`` is written by ``tests/regression/make_scores.py``.
Training rounds differently on other CPU families or torch builds, so the
comparison is exact (1e-6) only on the machine signature stored in the file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent / "regression"
spec = importlib.util.spec_from_file_location("make_scores", HERE / "make_scores.py")
make_scores = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_scores)


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    if not make_scores.COIL.is_dir():
        pytest.skip(f"COIL-20 not found at {make_scores.COIL}")
    with np.load(make_scores.FIXTURE) as data:
        arrays = {key: data[key] for key in data.files}
    signature = str(arrays.pop("signature"))
    if signature != make_scores.signature():
        pytest.skip(
            f"fixture written on {signature!r}, this is {make_scores.signature()!r}; "
            "regenerate it on the old code with tests/regression/make_scores.py to compare here"
        )
    return arrays


def test_both_presets_score_as_before(stored, one_torch_thread):
    now = make_scores.compute()
    assert sorted(now) == sorted(stored)
    for key, expected in stored.items():
        np.testing.assert_allclose(now[key], expected, rtol=1e-6, atol=1e-6, err_msg=key)
