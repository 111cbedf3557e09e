"""Load a dataset laid out as ``root/<label>/<sample_id>/<view>.<ext>``, or unlabelled without ``<label>``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from mmocc.data.dataset import MultiViewDataset, labels_from_strings
from mmocc.data.images import IMAGE_EXTENSIONS, check_image_options, reject
from mmocc.data.listing import ImageListing
from mmocc.data.turntable import TURNTABLE_NAME
from mmocc.data.view_map import ViewsOption, view_map


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
    found: list[tuple[str | None, Path, dict[str, Path]]], stems: dict[str, str], exact: bool, on_error: str
) -> tuple[list[dict[str, Path]], list[str | None], list[str], list[str]]:
    """Keep the sample folders holding the files ``stems`` names (exactly those, when ``exact``).

    Returns the files by view name (``stems`` maps file stem to view name),
    the label (None without a label level) and the id
    (``"<label>/<sample_id>"``, or ``"<sample_id>"``) of each sample kept,
    and the messages of the folders skipped.
    """
    samples: list[dict[str, Path]] = []
    labels: list[str | None] = []
    ids: list[str] = []
    skipped: list[str] = []
    for label, sample_dir, files in found:
        missing = [name for name in stems if name not in files]
        extra = sorted(set(files) - set(stems)) if exact else []
        if missing or extra:
            message = (
                f"{sample_dir}: views {sorted(files)} differ from {list(stems)} "
                f"(missing {missing}, extra {extra})"
            )
            reject(message, on_error, skipped)
            continue
        samples.append({view: files[name] for name, view in stems.items()})
        labels.append(label)
        ids.append(sample_dir.name if label is None else f"{label}/{sample_dir.name}")
    return samples, labels, ids, skipped


def _no_samples_hint(root: Path) -> str:
    """Explain what a folder without sample folders may be instead."""
    images = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if images and all(TURNTABLE_NAME.fullmatch(Path(name).stem) for name in images):
        return f"; its files look like a turntable collection: use turntable:{root}"
    if images:
        return (
            f"; it holds {len(images)} image files directly: for two cameras in two folders with "
            "matching file names, use pairs:DIR_A,DIR_B"
        )
    return ""


def _find_samples(root: Path) -> list[tuple[str | None, Path, dict[str, Path]]]:
    """List ``(label, sample folder, view files)``, telling the two layouts apart.

    A top-level folder holding image files is a sample (no label level); one
    holding folders is a label; an empty one is ignored. Mixing the two is an
    error.
    """
    sample_dirs, label_dirs = [], []
    for folder in _subfolders(root):
        if _view_files(folder):
            sample_dirs.append(folder)
        elif _subfolders(folder):
            label_dirs.append(folder)
    if sample_dirs and label_dirs:
        raise ValueError(
            f"{root}: mixes label folders ({', '.join(p.name for p in label_dirs[:3])}) and sample folders "
            f"holding images ({', '.join(p.name for p in sample_dirs[:3])}); use either "
            "root/<label>/<sample_id>/<view>.<ext> or root/<sample_id>/<view>.<ext>"
        )
    if label_dirs:
        return [
            (label_dir.name, sample_dir, _view_files(sample_dir))
            for label_dir in label_dirs
            for sample_dir in _subfolders(label_dir)
        ]
    return [(None, sample_dir, _view_files(sample_dir)) for sample_dir in sample_dirs]


def plan_folder(
    root: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
) -> ImageListing:
    """List the samples of ``root/<label>/<sample_id>/<view>.<ext>`` or ``root/<sample_id>/<view>.<ext>``.

    Nothing is decoded. Each sample folder holds one image per view, named
    after the view (``left.png``, ``right.jpg``); the extensions in
    :data:`mmocc.data.images.IMAGE_EXTENSIONS` are recognised, other and
    hidden files are ignored. The layout is told from the folders: a
    top-level folder holding images is a sample, one holding folders a
    label. Label folder names that are all integers written as Python
    writes them (``"7"``, not ``"007"``) become int labels.

    Parameters
    ----------
    root : path-like
        The top folder; each subfolder is a label, or a sample.
    views : sequence of str, mapping of str to str or str, optional
        The views (file stems) to load, in order; a sample folder may hold
        more. By default every sample folder must hold the same view names,
        loaded in sorted order. A mapping ``{stem: view}``, or the string
        ``"left:front,right:side"``, also renames them (see
        :mod:`mmocc.data.view_map`).
    size : int, default 32
        Images are resized to ``size`` x ``size`` (Lanczos, aspect ratio not
        kept).
    mode : {"auto", "RGB", "L"}, default "auto"
        Colour mode: 3 or 1 channels; ``"auto"`` gives 1 channel when the
        first sample's images are greyscale.
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
    ImageListing
        The samples; :meth:`ImageListing.load` decodes them into what
        :func:`load_folder` returns.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        For a malformed ``views``, no samples (with a hint when the folder
        looks like a turntable collection or a camera folder), a mix of the
        two layouts, two files for one view in a sample folder, or (with
        ``on_error="raise"``) a sample folder with different views; the
        message names the folder. Bad images are found when decoding.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs)
    stems = view_map(views)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = _find_samples(root)
    if not found:
        raise ValueError(
            f"{root}: no samples found; expected {root}/<label>/<sample_id>/<view>.<ext> or "
            f"{root}/<sample_id>/<view>.<ext>{_no_samples_hint(root)}"
        )
    if stems is None:
        common, _ = Counter(frozenset(files) for _, _, files in found).most_common(1)[0]
        stems = {name: name for name in sorted(common)}
    if not stems:
        raise ValueError(f"{root}: the sample folders hold no image files")
    samples, labels, ids, skipped = _samples(found, stems, views is None, on_error)
    return ImageListing.build(
        samples,
        [f"sample {sample_id}" for sample_id in ids],
        ids=ids,
        labels=None if found[0][0] is None else labels_from_strings([str(label) for label in labels]),
        skipped=skipped,
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
    )


def load_folder(
    root: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
) -> MultiViewDataset:
    """Load images laid out as ``root/<label>/<sample_id>/<view>.<ext>``: :func:`plan_folder`, decoded.

    Parameters
    ----------
    root, views, size, mode, cache, cache_dir, on_error, n_jobs
        See :func:`plan_folder`, which also describes the two layouts.

    Returns
    -------
    MultiViewDataset
        uint8 ``(n, C, size, size)`` image views; labels from the label
        folder names (None without a label level); ids
        ``"<label>/<sample_id>"`` (or ``"<sample_id>"``); ``paths`` the
        image files.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_folder`; with ``on_error="raise"`` also for an
        unreadable image, named with its file.
    """
    return plan_folder(root, views, size, mode, cache, cache_dir, on_error, n_jobs).load()
