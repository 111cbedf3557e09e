"""Decoding image files into uint8 arrays: Pillow, threads and the disk cache.

Every file goes through :func:`decode_image`: open with Pillow (its
decompression-bomb guard stays on), let JPEG decode at a reduced scale when
that still leaves at least ``size`` pixels per side, convert to ``mode``
(16-bit greyscale is scaled to 8 bits, not clipped), resize to
``size`` x ``size`` with :data:`RESAMPLE` (Lanczos, antialiased; the aspect
ratio is not kept), and return ``(C, size, size)`` uint8.

:func:`decode_files` runs it over many files in a thread pool (Pillow releases
the GIL while decoding and resizing; each task decodes a run of files) and
caches the stacked result on disk (see :mod:`mmocc.data.cache`). A load with
any missing or unreadable file is never cached. :func:`decode_samples`
decodes the view files of some samples (one chunk of an
:class:`mmocc.data.listing.ImageListing`), dropping or refusing samples with
a bad file. The logger ``mmocc.data.images`` reports, at DEBUG level,
whether a load was decoded or served from the cache.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from mmocc.data import cache as _cache

logger = logging.getLogger(__name__)

#: Resampling filter used to resize every image (antialiased Lanczos).
RESAMPLE = Image.Resampling.LANCZOS
#: Number of channels of each supported mode.
MODES = {"RGB": 3, "L": 1}
#: The mode that picks ``"L"`` or ``"RGB"`` from the files (see :func:`resolve_mode`).
AUTO_MODE = "auto"
#: Pillow modes that hold one grey channel (with or without alpha).
GREY_PILLOW_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
#: File extensions the folder and turntable sources treat as images.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm"}
)
#: Bump when decoding or the cache entry layout changes, so that old entries are not reused
#: (2: entries carry a checksum).
CACHE_FORMAT_VERSION = 2

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: Files decoded per thread-pool task: one hand-off per file costs more than a small image's decode.
_FILES_PER_TASK = 64


def check_image_options(size: int, mode: str, on_error: str, n_jobs: int | None) -> int:
    """Validate the options shared by the image sources.

    Parameters
    ----------
    size : int
        Output side length in pixels, at least 1.
    mode : {"RGB", "L", "auto"}
        Output colour mode.
    on_error : {"raise", "skip"}
        What to do with a bad sample.
    n_jobs : int or None
        Decoding threads, at least 1; None means ``os.cpu_count()``.

    Returns
    -------
    int
        The number of decoding threads to use.

    Raises
    ------
    ValueError
        For any invalid option, naming it.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if mode not in MODES and mode != AUTO_MODE:
        raise ValueError(f"mode must be one of {[*sorted(MODES), AUTO_MODE]}, got {mode!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if n_jobs is None:
        return os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    return int(n_jobs)


def stat_image_file(path: str | os.PathLike[str]) -> os.stat_result:
    """Return ``os.stat(path)``, refusing what is not a regular file before Pillow opens it.

    Opening a named pipe blocks until something writes to it, and a device
    may never end, so only regular files are decoded.

    Parameters
    ----------
    path : path-like
        The image file.

    Returns
    -------
    os.stat_result
        Its status.

    Raises
    ------
    OSError
        If ``path`` is missing (``FileNotFoundError``) or not a regular file.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    return info


def _key_stat(path: str | os.PathLike[str], parents: dict[str, str]) -> tuple[str, int, int]:
    """Return ``(resolved path, size, mtime in ns)`` of a regular file, for its cache key.

    One ``lstat`` per file: it is the file's status unless the file is a
    symbolic link. Each folder is resolved once (``parents`` caches it), not
    once per file; a link is resolved on its own.
    """
    text = os.fspath(path)
    info = os.lstat(text)
    if stat.S_ISLNK(info.st_mode):
        info = stat_image_file(text)
        return str(Path(text).resolve()), info.st_size, info.st_mtime_ns
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", text)
    folder, name = os.path.split(os.path.abspath(text))
    if folder not in parents:
        parents[folder] = str(Path(folder).resolve())
    return os.path.join(parents[folder], name), info.st_size, info.st_mtime_ns


def decode_image(path: str | os.PathLike[str], size: int, mode: str) -> np.ndarray:
    """Decode one image file into a ``(C, size, size)`` uint8 array.

    Parameters
    ----------
    path : path-like
        The image file.
    size : int
        Output side length in pixels.
    mode : {"RGB", "L"}
        Output colour mode (3 or 1 channels).

    Returns
    -------
    numpy.ndarray of shape (C, size, size), dtype uint8
        The resized image.

    Raises
    ------
    OSError
        If Pillow cannot open or fully decode the file (including truncated
        files).
    PIL.Image.DecompressionBombError
        If the image is larger than Pillow's decompression-bomb limit.
    """
    with Image.open(path) as image:
        image.draft(mode, (size, size))
        if image.mode in _SIXTEEN_BIT_MODES:
            eight_bit = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
            converted = Image.fromarray(eight_bit).convert(mode)
        else:
            converted = image.convert(mode)
    array = np.asarray(converted.resize((size, size), RESAMPLE), dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def decode_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    size: int,
    mode: str,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    fail_fast: bool = False,
) -> tuple[np.ndarray, dict[int, BaseException]]:
    """Decode image files into one ``(n, C, size, size)`` uint8 array, with caching.

    Parameters
    ----------
    paths : sequence of path-like
        The files, in output order.
    size : int
        Output side length in pixels.
    mode : {"RGB", "L"}
        Output colour mode.
    cache : bool, default True
        Read and write the disk cache.
    cache_dir : path-like, optional
        Cache folder; see :func:`mmocc.data.cache.resolve_cache_dir`.
    n_jobs : int, default 1
        Decoding threads.
    fail_fast : bool, default False
        Decode nothing when a file is missing.

    Returns
    -------
    images : numpy.ndarray of shape (n, C, size, size), dtype uint8
        The images; rows of failed files are zero.
    errors : dict of int to Exception
        The exception raised for each failed file, by index into ``paths``
        (``FileNotFoundError`` for a missing file; see
        :func:`stat_image_file` for folders, pipes and devices, which are
        never opened). Nothing is cached when it is not empty.
    """
    images = np.zeros((len(paths), MODES[mode], size, size), dtype=np.uint8)
    errors: dict[int, BaseException] = {}
    stats = []
    parents: dict[str, str] = {}
    for i, path in enumerate(paths):
        try:
            stats.append(_key_stat(path, parents))
        except OSError as exc:
            errors[i] = exc
    if errors and fail_fast:
        return images, errors
    target = None
    if cache and not errors:
        settings = {
            "size": int(size),
            "mode": mode,
            "resample": RESAMPLE.name,
            "format": CACHE_FORMAT_VERSION,
            "pillow": PIL.__version__,
        }
        target = _cache.cache_path(_cache.resolve_cache_dir(cache_dir), _cache.cache_key(stats, settings))
        cached = _cache.read_cached(target, images.shape)
        if cached is not None:
            logger.debug("cache hit: %d images from %s", len(cached), target)
            return cached, {}

    def work(block: Sequence[int]) -> dict[int, BaseException]:
        failed: dict[int, BaseException] = {}
        for i in block:
            try:
                images[i] = decode_image(paths[i], size, mode)
            except Exception as exc:  # any failure of one file is reported against that file
                failed[i] = exc
        return failed

    todo = [i for i in range(len(paths)) if i not in errors]
    if n_jobs > 1 and len(todo) > 1:
        step = max(1, min(_FILES_PER_TASK, -(-len(todo) // n_jobs)))
        with ThreadPoolExecutor(max_workers=min(n_jobs, len(todo))) as pool:
            for failed in pool.map(work, [todo[i : i + step] for i in range(0, len(todo), step)]):
                errors.update(failed)
    else:
        errors.update(work(todo))
    logger.debug("decoded %d images (%d failed)", len(todo), len(errors))
    if target is not None and not errors:
        _cache.store(target, images)
    return images, errors


def _describe(context: str, view: str, path: Path, exc: BaseException) -> str:
    """One-line description of a failed file."""
    if isinstance(exc, FileNotFoundError):
        return f"{context}, view {view!r}: file not found: {path}"
    return f"{context}, view {view!r}: cannot read image {path}: {type(exc).__name__}: {exc}"


def reject(message: str, on_error: str, skipped: list[str]) -> None:
    """Handle a bad sample found before decoding, as the sources' ``on_error`` says.

    Parameters
    ----------
    message : str
        What is wrong, naming the sample or file.
    on_error : {"raise", "skip"}
        ``"raise"`` raises; ``"skip"`` appends ``message`` to ``skipped``, for
        the warning :func:`warn_skipped` issues.
    skipped : list of str
        The messages of the samples skipped so far.

    Raises
    ------
    ValueError
        With ``message``, when ``on_error="raise"``.
    """
    if on_error == "raise":
        raise ValueError(message)
    skipped.append(message)


def warn_skipped(messages: Sequence[str]) -> None:
    """Issue the single warning listing every skipped sample or file.

    Parameters
    ----------
    messages : sequence of str
        One line per skipped file or sample; nothing happens when empty.
    """
    if messages:
        warnings.warn(
            f"skipped {len(messages)} bad file(s) or sample(s):\n  " + "\n  ".join(messages),
            UserWarning,
            stacklevel=4,
        )


def resolve_mode(mode: str, samples: Sequence[Mapping[str, Path]]) -> str:
    """Turn ``mode="auto"`` into ``"L"`` or ``"RGB"`` by looking at the files.

    Only the first sample's files are opened, and only their headers are
    read: ``"L"`` when every one of them is greyscale (Pillow modes
    :data:`GREY_PILLOW_MODES`), ``"RGB"`` otherwise (palette images count as
    colour). An unreadable first file gives ``"RGB"``; decoding reports it.

    Parameters
    ----------
    mode : {"RGB", "L", "auto"}
        The requested mode.
    samples : sequence of mapping of str to pathlib.Path
        For each sample, the file of each view.

    Returns
    -------
    str
        ``mode`` itself unless it is ``"auto"``.
    """
    if mode != AUTO_MODE:
        return mode
    if not samples:
        return "RGB"
    try:
        modes = set()
        for path in samples[0].values():
            stat_image_file(path)
            with Image.open(path) as image:
                modes.add(image.mode)
    except (OSError, ValueError):
        return "RGB"
    return "L" if modes <= GREY_PILLOW_MODES else "RGB"


def decode_samples(
    files: Mapping[str, Sequence[str]],
    contexts: Sequence[str],
    *,
    size: int,
    mode: str,
    cache: bool,
    cache_dir: str | os.PathLike[str] | None,
    on_error: str,
    n_jobs: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Decode the view files of some samples, handling bad files per sample.

    Each distinct file is decoded once, even when several samples share it.
    Nothing is warned: the caller reports the returned messages (see
    :func:`warn_skipped`).

    Parameters
    ----------
    files : mapping of str to sequence of str
        The file of each sample, per view; every view lists the samples in
        one order.
    contexts : sequence of str
        For each sample, how error messages name it (for example
        ``"manifest.csv line 4 (sample_id 'a7')"``).
    size, cache, cache_dir, n_jobs
        As for :func:`decode_files`.
    mode : {"RGB", "L"}
        Colour mode, already resolved (see :func:`resolve_mode`).
    on_error : {"raise", "skip"}
        ``"raise"`` stops at the first sample with a bad file; ``"skip"``
        drops samples with a bad file.

    Returns
    -------
    views : dict of str to numpy.ndarray
        ``(n_kept, C, size, size)`` uint8 images per view.
    keep : numpy.ndarray of bool, shape (len(contexts),)
        Which samples were kept.
    messages : list of str
        One line per bad file of the samples dropped (empty with ``"raise"``).

    Raises
    ------
    FileNotFoundError
        For a missing file, when ``on_error="raise"``.
    ValueError
        For an unreadable file, when ``on_error="raise"``.
    """
    index: dict[str, int] = {}
    for column in files.values():
        for path in column:
            index.setdefault(path, len(index))
    images, errors = decode_files(
        list(index),
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        fail_fast=on_error == "raise",
    )
    keep = np.ones(len(contexts), dtype=bool)
    messages = []
    if errors:
        for row, context in enumerate(contexts):
            for view, column in files.items():
                exc = errors.get(index[column[row]])
                if exc is None:
                    continue
                message = _describe(context, view, Path(column[row]), exc)
                if on_error == "raise":
                    if isinstance(exc, FileNotFoundError):
                        raise FileNotFoundError(message) from exc
                    raise ValueError(message) from exc
                keep[row] = False
                messages.append(message)
    rows = np.flatnonzero(keep).tolist()
    views = {
        view: images[np.asarray([index[column[i]] for i in rows], dtype=np.intp)]
        for view, column in files.items()
    }
    return views, keep, messages
