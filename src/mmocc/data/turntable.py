"""Load turntable collections (COIL-20 / COIL-100 style) as pairs of views of one object."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.images import DEFAULT_RESIZE, IMAGE_EXTENSIONS, check_image_options, reject
from mmocc.data.listing import ImageListing

#: File stems of a turntable collection: ``obj{K}__{P}``.
TURNTABLE_NAME = re.compile(r"obj(\d+)__(\d+)")
#: Pose-index numbering of COIL-20: 72 poses, 5 degrees apart.
COIL20_ANGLE_STEP = 5


def _scan(root: Path) -> dict[tuple[int, int], Path]:
    """Map (object, pose number) to file for every ``obj{K}__{P}.<ext>`` in ``root``."""
    files: dict[tuple[int, int], Path] = {}
    for path in sorted(root.iterdir()):
        match = TURNTABLE_NAME.fullmatch(path.stem)
        if match is None or path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        key = (int(match[1]), int(match[2]))
        if key in files:
            raise ValueError(
                f"{root}: object {key[0]} pose {key[1]} appears twice: {files[key].name}, {path.name}"
            )
        files[key] = path
    return files


def _positive_int(name: str, value: object) -> int:
    """Validate a positive integer parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _by_angle(
    files: dict[tuple[int, int], Path], delta_deg: int, angle_step: int | None
) -> dict[tuple[int, int], Path]:
    """Map (object, angle in degrees) to file, checking the angle step and ``delta_deg``."""
    if angle_step is None:
        angle_step = COIL20_ANGLE_STEP if max(pose for _, pose in files) < 72 else 1
    step = _positive_int("angle_step", angle_step)
    if delta_deg >= 360 or delta_deg % step:
        raise ValueError(f"delta_deg must be in 1..359 and a multiple of angle_step={step}, got {delta_deg}")
    by_angle: dict[tuple[int, int], Path] = {}
    for (obj, pose), path in files.items():
        if pose * step >= 360:
            raise ValueError(f"{path}: pose {pose} x angle_step {step} = {pose * step} degrees, beyond 359")
        by_angle[obj, pose * step] = path
    return by_angle


def _pairs(
    by_angle: dict[tuple[int, int], Path], delta_deg: int, names: list[str], on_error: str
) -> tuple[list[dict[str, Path]], list[str], list[tuple[int, int, str]], list[str]]:
    """Pair each photo with the photo of its object ``delta_deg`` further round.

    Returns the view files, the error-message context and the (object,
    angle, file stem) of each pair, and the messages of the photos skipped.
    """
    samples: list[dict[str, Path]] = []
    contexts: list[str] = []
    keys: list[tuple[int, int, str]] = []
    skipped: list[str] = []
    for (obj, angle), path in sorted(by_angle.items()):
        partner = (angle + delta_deg) % 360
        if (obj, partner) not in by_angle:
            message = f"{path}: object {obj} has no photo at {partner} degrees ({delta_deg} from {angle})"
            reject(message, on_error, skipped)
            continue
        samples.append({names[0]: path, names[1]: by_angle[obj, partner]})
        contexts.append(f"object {obj} at {angle} degrees")
        keys.append((obj, angle, path.stem))
    return samples, contexts, keys, skipped


def plan_turntable(
    root: str | os.PathLike[str],
    delta_deg: int = 90,
    size: int = 32,
    mode: str = "L",
    angle_step: int | None = None,
    view_names: Sequence[str] = ("front", "side"),
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    resize: str = DEFAULT_RESIZE,
) -> ImageListing:
    """List turntable photos as two views of each object, ``delta_deg`` apart, without decoding them.

    Files are named ``obj{K}__{P}.<ext>`` (K = object, P = pose). Each sample
    pairs the photo at angle ``a`` with the photo of the same object at
    ``(a + delta_deg) mod 360``, so every photo is the first view of one
    sample: COIL-20 (20 objects x 72 poses) gives 1,440 samples.

    Parameters
    ----------
    root : path-like
        The folder holding the photos; other files are ignored.
    delta_deg : int, default 90
        Angle between the two views, in degrees, in 1..359 and a multiple of
        the angle step. 90 gives two perpendicular views.
    size : int, default 32
        Images are resized to ``size`` x ``size`` (Lanczos; see ``resize``).
    mode : {"L", "RGB"}, default "L"
        Colour mode: 1 or 3 channels.
    angle_step : int, optional
        Degrees per unit of P. By default it is detected: 5 (COIL-20, where
        P is a pose index 0..71) when every P is below 72, else 1 (COIL-100,
        where P is the angle in degrees). Pass it for a subset of COIL-100
        whose angles all lie below 72.
    view_names : pair of str, default ("front", "side")
        Names of the view at ``a`` and the view at ``a + delta_deg``.
    cache : bool, default True
        Cache the decoded arrays on disk and reuse them.
    cache_dir : path-like, optional
        Cache folder; default ``$MMOCC_CACHE_DIR``, else the user cache folder.
    on_error : {"raise", "skip"}, default "raise"
        For a photo without a partner at ``a + delta_deg`` or an unreadable
        image: raise, or drop the sample and warn once listing every
        skipped file.
    n_jobs : int, optional
        Decoding threads; default ``os.cpu_count()``.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images (and masks) are brought to ``size`` x ``size``:
        ``"stretch"`` does not keep the aspect ratio; ``"pad"`` fits the
        image inside and pads it with zeros (defect-free in masks); ``"crop"`` covers the square and keeps its
        centre (see :mod:`mmocc.data.images`).

    Returns
    -------
    ImageListing
        The samples; :meth:`ImageListing.load` decodes them into what
        :func:`load_turntable` returns.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        For invalid parameters, no matching files, a pose given twice, an
        angle of 360 or more, or (with ``on_error="raise"``) a photo without
        a partner; the message names the file. Bad images are found when
        decoding.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs, resize)
    delta_deg = _positive_int("delta_deg", delta_deg)
    names = list(view_names)
    if len(names) != 2 or len(set(names)) != 2 or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"view_names must be two different non-empty strings, got {view_names!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files = _scan(root)
    if not files:
        raise ValueError(f"{root}: no image files named obj<K>__<P>.<ext>")
    samples, contexts, keys, skipped = _pairs(
        _by_angle(files, delta_deg, angle_step), delta_deg, names, on_error
    )
    objects = np.asarray([obj for obj, _, _ in keys], dtype=np.int64)
    return ImageListing.build(
        samples,
        contexts,
        ids=[stem for _, _, stem in keys],
        labels=objects,
        groups=objects.copy(),
        metadata={"angle": np.asarray([angle for _, angle, _ in keys], dtype=np.int64)},
        skipped=skipped,
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        resize=resize,
    )


def load_turntable(
    root: str | os.PathLike[str],
    delta_deg: int = 90,
    size: int = 32,
    mode: str = "L",
    angle_step: int | None = None,
    view_names: Sequence[str] = ("front", "side"),
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    resize: str = DEFAULT_RESIZE,
) -> MultiViewDataset:
    """Load turntable photos as two views of each object: :func:`plan_turntable`, decoded.

    Parameters
    ----------
    root, delta_deg, size, mode, angle_step, view_names, cache, cache_dir, on_error, n_jobs, resize
        See :func:`plan_turntable`, which also says how photos are paired.

    Returns
    -------
    MultiViewDataset
        Two uint8 ``(n, C, size, size)`` image views; labels, groups = the
        object number K (int); ids = the first view's file stem; metadata
        ``"angle"`` = the first view's angle in degrees (int).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_turntable`; with ``on_error="raise"`` also for an
        unreadable image, named with its file.

    Examples
    --------
    >>> ds = load_turntable("../shared/data/coil-20-proc", size=32)  # doctest: +SKIP
    >>> len(ds), ds.view_names, len(ds.classes)  # doctest: +SKIP
    (1440, ['front', 'side'], 20)
    """
    return plan_turntable(
        root, delta_deg, size, mode, angle_step, view_names, cache, cache_dir, on_error, n_jobs, resize
    ).load()
