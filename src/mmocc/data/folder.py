"""Load a dataset laid out as ``root/<label>/<sample_id>/<view>.<ext>``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from mmocc.data.dataset import MultiViewDataset, labels_from_strings
from mmocc.data.images import IMAGE_EXTENSIONS, check_image_options, load_view_images, reject


def _subfolders(folder: Path) -> list[Path]:
    """Sorted non-hidden subfolders."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _view_files(sample_dir: Path) -> dict[str, Path]:
    """Map view name (file stem) to image file in one sample folder."""
    files: dict[str, Path] = {}
    for path in sorted(sample_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        if path.stem in files:
            raise ValueError(
                f"{sample_dir}: two files for view {path.stem!r}: {files[path.stem].name}, {path.name}"
            )
        files[path.stem] = path
    return files


def _samples(
    found: list[tuple[str, Path, dict[str, Path]]], view_names: list[str], exact: bool, on_error: str
) -> tuple[list[dict[str, Path]], list[str], list[str], list[str]]:
    """Keep the sample folders holding the views (exactly those, when ``exact``).

    Returns the view files, the label and the id (``"<label>/<sample_id>"``)
    of each sample kept, and the messages of the folders skipped.
    """
    samples: list[dict[str, Path]] = []
    labels: list[str] = []
    ids: list[str] = []
    skipped: list[str] = []
    for label, sample_dir, files in found:
        missing = [name for name in view_names if name not in files]
        extra = sorted(set(files) - set(view_names)) if exact else []
        if missing or extra:
            message = (
                f"{sample_dir}: views {sorted(files)} differ from {view_names} "
                f"(missing {missing}, extra {extra})"
            )
            reject(message, on_error, skipped)
            continue
        samples.append({name: files[name] for name in view_names})
        labels.append(label)
        ids.append(f"{label}/{sample_dir.name}")
    return samples, labels, ids, skipped


def load_folder(
    root: str | os.PathLike[str],
    views: Sequence[str] | None = None,
    size: int = 32,
    mode: str = "RGB",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
) -> MultiViewDataset:
    """Load images laid out as ``root/<label>/<sample_id>/<view>.<ext>``.

    Each sample folder holds one image per view, named after the view
    (``left.png``, ``right.jpg``); the extensions in
    :data:`mmocc.data.images.IMAGE_EXTENSIONS` are recognised, other and
    hidden files are ignored.

    Parameters
    ----------
    root : path-like
        The top folder; each subfolder is a label.
    views : sequence of str, optional
        The views to load, in order; a sample folder may hold more. By
        default every sample folder must hold the same view names, loaded
        in sorted order.
    size : int, default 32
        Images are resized to ``size`` x ``size`` (Lanczos, aspect ratio not
        kept).
    mode : {"RGB", "L"}, default "RGB"
        Colour mode: 3 or 1 channels.
    cache : bool, default True
        Cache the decoded arrays on disk and reuse them.
    cache_dir : path-like, optional
        Cache folder; default ``$MMOCC_CACHE_DIR``, else the user cache folder.
    on_error : {"raise", "skip"}, default "raise"
        For a sample folder whose views differ from the others (or lack a
        requested view) or an unreadable image: raise, or drop the sample
        and warn once listing every skipped file.
    n_jobs : int, optional
        Decoding threads; default ``os.cpu_count()``.

    Returns
    -------
    MultiViewDataset
        uint8 ``(n, C, size, size)`` image views; labels from the label
        folder names (ints when all are integers); ids ``"<label>/<sample_id>"``.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        For no samples, two files for one view in a sample folder, or (with
        ``on_error="raise"``) a sample folder with different views or an
        unreadable image; the message names the folder or file.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = [
        (label_dir.name, sample_dir, _view_files(sample_dir))
        for label_dir in _subfolders(root)
        for sample_dir in _subfolders(label_dir)
    ]
    if not found:
        raise ValueError(f"{root}: no samples found; expected {root}/<label>/<sample_id>/<view>.<ext>")
    if views is None:
        common, _ = Counter(frozenset(files) for _, _, files in found).most_common(1)[0]
        view_names = sorted(common)
    else:
        view_names = list(views)
    if not view_names:
        raise ValueError(f"{root}: the sample folders hold no image files")
    samples, labels, ids, skipped = _samples(found, view_names, views is None, on_error)
    arrays, keep = load_view_images(
        samples,
        [f"sample {sample_id}" for sample_id in ids],
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        skipped=skipped,
    )
    return MultiViewDataset(
        arrays,
        labels=labels_from_strings(labels)[keep],
        ids=[sample_id for sample_id, ok in zip(ids, keep, strict=True) if ok],
    )
