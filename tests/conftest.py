"""Shared fixtures; dataset fixtures carry a ``ds_`` prefix.

The fuzz tests (``tests/robustness/test_fuzz_*.py``) run under the hypothesis profile
``ci`` by default: a fixed seed, no example database, a bounded number of
examples, so that CI is reproducible and takes about a minute.
``pytest --hypothesis-profile=long tests/robustness/test_fuzz_*.py`` searches longer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from PIL import Image

_FUZZ_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=40, deadline=None, suppress_health_check=_FUZZ_CHECKS
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=_FUZZ_CHECKS)
settings.load_profile("ci")


@pytest.fixture
def ds_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder; MMOCC_CACHE_DIR also points into tmp_path, never at the user cache."""
    monkeypatch.setenv("MMOCC_CACHE_DIR", str(tmp_path / "env-cache"))
    return tmp_path / "cache"


@pytest.fixture
def ds_write_image() -> Callable[..., Path]:
    """Return ``write(path, value=0, size=(12, 10), mode="RGB")`` that saves a small image.

    The image has a gradient plus ``value`` so that different values give
    different arrays.
    """

    def write(path: Path, value: int = 0, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        height, width = size
        base = (np.arange(height * width).reshape(height, width) * 3 + value * 17) % 256
        array = base.astype(np.uint8)
        if mode == "RGB":
            array = np.stack([array, 255 - array, np.full_like(array, value % 256)], axis=-1)
        Image.fromarray(array).save(path)
        return path

    return write


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: small models run fastest and steadiest so on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
