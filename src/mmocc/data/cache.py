"""On-disk cache of decoded image arrays.

Each cache entry is one file ``images-<key>.bin``, named by a SHA-256 hash
of everything the decoded array depends on: the source files' resolved
paths and status (:func:`file_stat`: size, modification time, status-change
time and inode), and the decoding settings. It holds
:data:`MAGIC`, the :data:`CHECKSUM` digest of the array's bytes, then the
array in ``.npy`` format (read with ``allow_pickle=False``). An entry that is
unreadable, of the wrong shape or whose bytes do not match the digest (a
flipped bit keeps the file's size) is a miss: it is reported in one
``RuntimeWarning`` naming it, and rebuilt. Entries are written to a temporary
file in the cache folder and renamed into place, so an interrupted run
leaves either the whole file or nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from platformdirs import user_cache_dir

from mmocc.utils.files import atomic_open

logger = logging.getLogger(__name__)

#: Environment variable that overrides the default cache folder.
CACHE_ENV_VAR = "MMOCC_CACHE_DIR"
#: First bytes of every cache entry.
MAGIC = b"\x93MMOCC-IMAGES\x01"
#: The :mod:`hashlib` algorithm of the checksum each entry stores (32 bytes).
CHECKSUM = "sha256"
#: The name of a cache entry (see :func:`cache_path`).
ENTRY_NAME = re.compile(r"images-[0-9a-f]{64}\.bin")


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


FileStat = tuple[str, int, int, int, int]
"""What the cache key holds of one source file: see :func:`file_stat`."""


def file_stat(path: str, info: os.stat_result) -> FileStat:
    """Return what identifies the contents of a file in a cache key.

    Size and modification time alone are not enough: a rewrite of the same
    size whose modification time is set back (``touch -r``, ``rsync -t``,
    an archive unpacked again) keeps both. The status-change time
    (``st_ctime_ns``), which every write updates and no call can set back,
    and the inode, which a replaced file changes, close that: any rewrite
    gives another key.

    Parameters
    ----------
    path : str
        The file's resolved path.
    info : os.stat_result
        Its status.

    Returns
    -------
    tuple of (str, int, int, int, int)
        ``(path, size in bytes, mtime in ns, ctime in ns, inode)``.
    """
    return path, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def cache_key(stats: Sequence[FileStat], settings: dict[str, Any]) -> str:
    """Hash source file stats and decode settings into a cache key.

    Parameters
    ----------
    stats : sequence of tuple
        :func:`file_stat` of each source file, in output order.
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
        ``folder / "images-<key>.bin"``.
    """
    return folder / f"images-{key}.bin"


def clear(folder: Path) -> tuple[int, int]:
    """Remove every cache entry from a cache folder, and nothing else.

    Only regular files named as :data:`ENTRY_NAME` says are removed, so
    pointing this at the wrong folder deletes no one else's files.

    Parameters
    ----------
    folder : pathlib.Path
        The cache folder (see :func:`resolve_cache_dir`); it may not exist.

    Returns
    -------
    tuple of int
        The number of entries removed and the bytes they held.

    Raises
    ------
    OSError
        If an entry cannot be removed, naming it.
    """
    removed, freed = 0, 0
    if not folder.is_dir():
        return removed, freed
    for entry in os.scandir(folder):
        if ENTRY_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            size = entry.stat(follow_symlinks=False).st_size
            os.unlink(entry.path)
            removed, freed = removed + 1, freed + size
    return removed, freed


def checksum(array: np.ndarray) -> bytes:
    """Return the :data:`CHECKSUM` digest of an array's bytes.

    Parameters
    ----------
    array : numpy.ndarray
        A C-contiguous array.

    Returns
    -------
    bytes
        The 32-byte digest.
    """
    return hashlib.new(CHECKSUM, array.data).digest()


def _read_entry(path: Path) -> tuple[bytes, np.ndarray]:
    """Return an entry's stored digest and array; ValueError when the file is not an entry."""
    with open(path, "rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise ValueError("not an mmocc image cache entry")
        digest = file.read(hashlib.new(CHECKSUM).digest_size)
        return digest, np.lib.format.read_array(file, allow_pickle=False)


def _problem(digest: bytes, array: np.ndarray, shape: tuple[int, ...]) -> str | None:
    """Return why an entry holding ``array`` and ``digest`` cannot be used, or None."""
    if array.dtype != np.uint8 or array.shape != shape or not array.flags.c_contiguous:
        return f"holds {array.dtype} {array.shape}, expected C-ordered uint8 {shape}"
    if checksum(array) != digest:
        return f"checksum mismatch ({CHECKSUM}): the file is corrupt"
    return None


def read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Load a cache entry, or return None when absent, unreadable, of the wrong shape or corrupt.

    Parameters
    ----------
    path : pathlib.Path
        The cache file.
    shape : tuple of int
        The expected array shape; the dtype must be uint8.

    Returns
    -------
    numpy.ndarray or None
        The cached array, or None on a miss. A present entry that cannot be
        used is named in a ``RuntimeWarning``.
    """
    if not path.is_file():
        return None
    try:
        digest, array = _read_entry(path)
    except (OSError, ValueError, EOFError) as exc:
        problem: str | None = f"unreadable: {exc}"
    else:
        problem = _problem(digest, array, shape)
    if problem is None:
        return array
    warnings.warn(
        f"ignoring image cache entry {path}: {problem}; decoding again", RuntimeWarning, stacklevel=3
    )
    return None


def _write_entry(file: IO[bytes], array: np.ndarray) -> None:
    """Write the magic, the checksum and ``array`` in ``.npy`` format without pickling."""
    file.write(MAGIC + checksum(array))
    np.lib.format.write_array(file, array, allow_pickle=False)


def store(path: Path, array: np.ndarray) -> None:
    """Write a cache entry, warning instead of failing when the disk refuses.

    Parameters
    ----------
    path : pathlib.Path
        The cache file.
    array : numpy.ndarray
        The decoded images, C-contiguous.
    """
    try:
        with atomic_open(path, "wb") as file:
            _write_entry(file, array)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        warnings.warn(f"could not write image cache {path}: {reason}", RuntimeWarning, stacklevel=3)
    except ValueError as exc:  # the entry's name is taken by a link, folder or device
        warnings.warn(f"could not write image cache: {exc}", RuntimeWarning, stacklevel=3)
    else:
        logger.debug("cached %d images in %s", len(array), path)
