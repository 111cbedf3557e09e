"""On-disk cache of decoded image arrays.

Each cache entry is one ``.npy`` file (read with ``allow_pickle=False``) named
by a SHA-256 hash of everything the decoded array depends on: the source
files' resolved paths, sizes and modification times, and the decoding settings.
Entries are written to a temporary file in the cache folder and renamed into
place, so an interrupted run leaves either the whole file or nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from platformdirs import user_cache_dir

from mmocc.utils import atomic_open

logger = logging.getLogger(__name__)

#: Environment variable that overrides the default cache folder.
CACHE_ENV_VAR = "MMOCC_CACHE_DIR"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder holding cached image arrays.

    Parameters
    ----------
    cache_dir : path-like, optional
        An explicit folder; wins over everything else.

    Returns
    -------
    pathlib.Path
        ``cache_dir`` if given, else ``$MMOCC_CACHE_DIR`` if set, else the
        user cache folder of ``platformdirs.user_cache_dir("mmocc")``.
    """
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else Path(user_cache_dir("mmocc"))


def cache_key(stats: Sequence[tuple[str, int, int]], settings: dict[str, Any]) -> str:
    """Hash source file stats and decode settings into a cache key.

    Parameters
    ----------
    stats : sequence of (str, int, int)
        ``(resolved path, size in bytes, mtime in ns)`` of each source file, in
        output order.
    settings : dict
        JSON-serialisable decode settings (size, mode, filter, format version).

    Returns
    -------
    str
        A hex digest usable as a file name.
    """
    payload = json.dumps({"settings": settings, "files": [list(s) for s in stats]}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cache_path(folder: Path, key: str) -> Path:
    """Return the file of cache entry ``key`` in ``folder``.

    Parameters
    ----------
    folder : pathlib.Path
        The cache folder.
    key : str
        A key from :func:`cache_key`.

    Returns
    -------
    pathlib.Path
        ``folder / "images-<key>.npy"``.
    """
    return folder / f"images-{key}.npy"


def read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Load a cache entry, or return None when absent, unreadable or of the wrong shape.

    Parameters
    ----------
    path : pathlib.Path
        The cache file.
    shape : tuple of int
        The expected array shape; the dtype must be uint8.

    Returns
    -------
    numpy.ndarray or None
        The cached array, or None on a miss.
    """
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        logger.warning("ignoring unreadable image cache %s: %s", path, exc)
        return None
    if array.dtype != np.uint8 or array.shape != shape:
        logger.warning(
            "ignoring image cache %s: %s %s, expected uint8 %s", path, array.dtype, array.shape, shape
        )
        return None
    return array


def _save_npy(file: IO[bytes], array: np.ndarray) -> None:
    """Write ``array`` in ``.npy`` format without pickling."""
    np.save(file, array, allow_pickle=False)


def store(path: Path, array: np.ndarray) -> None:
    """Write a cache entry, warning instead of failing when the disk refuses.

    Parameters
    ----------
    path : pathlib.Path
        The cache file.
    array : numpy.ndarray
        The decoded images.
    """
    try:
        with atomic_open(path, "wb") as file:
            _save_npy(file, array)
    except OSError as exc:
        warnings.warn(f"could not write image cache {path}: {exc}", RuntimeWarning, stacklevel=3)
    else:
        logger.debug("cached %d images in %s", len(array), path)
