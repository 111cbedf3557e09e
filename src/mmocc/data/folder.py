"""Load a dataset laid out as ``root/<label>/<sample_id>/<view>.<ext>``, or unlabelled without ``<label>``.

Ground-truth masks may lie beside the images (:func:`images_and_masks`).
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mmocc.data.dataset import MultiViewDataset, labels_from_strings
from mmocc.data.images import DEFAULT_RESIZE, IMAGE_EXTENSIONS, check_image_options, reject
from mmocc.data.listing import ImageListing
from mmocc.data.mvtec import MASK_SUFFIX
from mmocc.data.turntable import TURNTABLE_NAME
from mmocc.data.view_map import ViewsOption, view_map

#: What the ``extensions`` option of the folder and pairs sources accepts.
ExtensionsOption = str | Iterable[str] | None

#: One sample folder: its label (None without a label level), the folder, its images and its masks by view.
_Found = tuple[str | None, Path, dict[str, Path], dict[str, Path]]


def image_extensions(extensions: ExtensionsOption) -> frozenset[str] | None:
    """Read the ``extensions`` option of the folder and pairs sources.

    Parameters
    ----------
    extensions : str, iterable of str or None
        The extensions of the image files: ``"jpg"``, ``"jpg,png"``,
        ``[".jpg", "jpeg"]`` (case and leading dot do not matter); None:
        every extension of :data:`mmocc.data.images.IMAGE_EXTENSIONS`.

    Returns
    -------
    frozenset of str or None
        The extensions as ``".jpg"``; None when ``extensions`` is None.

    Raises
    ------
    TypeError
        For a value of another type.
    ValueError
        For an extension that is not an image extension, or none at all.

    Examples
    --------
    >>> sorted(image_extensions("JPG, .jpeg"))
    ['.jpeg', '.jpg']
    """
    if extensions is None:
        return None
    if not isinstance(extensions, (str, list, tuple, set, frozenset)):
        raise TypeError(f"extensions must be a string such as 'jpg,jpeg' or a list, got {extensions!r}")
    items = extensions.split(",") if isinstance(extensions, str) else list(extensions)
    chosen = set()
    for item in items:
        suffix = "." + str(item).strip().lstrip(".").lower()
        if suffix not in IMAGE_EXTENSIONS:
            known = ", ".join(sorted(ext[1:] for ext in IMAGE_EXTENSIONS))
            raise ValueError(f"extensions: {item!r} is not an image extension; choose among {known}")
        chosen.add(suffix)
    if not chosen:
        raise ValueError("extensions: give at least one, e.g. extensions=jpg")
    return frozenset(chosen)


def images_and_masks(
    folder: Path, extensions: frozenset[str] | None, two_files: str
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Sort a folder's image files into images and masks, both by file stem.

    The rule: an image is a file with one of ``extensions`` (by default any
    image extension) whose stem does not end in ``_mask``. The mask of the
    image ``<stem>.<ext>`` is ``<stem>_mask.<any image extension>`` or, when
    ``extensions`` is given, ``<stem>.<an image extension not in it>``
    (``extensions=jpg``: ``x.png`` is the mask of ``x.jpg``). Hidden files,
    other files and files of an unchosen extension without an image of
    their stem are ignored. Stems are compared in Unicode normal form NFC:
    ``é`` written as one code point (NFC, as Linux and Windows tools
    write it) and as ``e`` plus a combining accent (NFD, as macOS writes
    it) are one name.

    Parameters
    ----------
    folder : pathlib.Path
        The folder; subfolders are not searched.
    extensions : frozenset of str or None
        The image extensions (:func:`image_extensions`).
    two_files : str
        How the error for two images of one stem starts, e.g. ``"{folder}:
        two files for view"``; the stem and the files follow.

    Returns
    -------
    images, masks : dict of str to pathlib.Path
        The image files by stem, and the mask files by their image's stem.

    Raises
    ------
    ValueError
        For two images with one stem (with a hint on ``extensions``), two
        masks for one image, or a ``<stem>_mask`` file without its image.
    """
    images: dict[str, Path] = {}
    candidates: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if path.name.startswith(".") or suffix not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        stem = unicodedata.normalize("NFC", path.stem)
        if stem.endswith(MASK_SUFFIX) and stem != MASK_SUFFIX:
            candidates.setdefault(stem[: -len(MASK_SUFFIX)], []).append(path)
        elif extensions is None or suffix in extensions:
            if stem in images:
                first = images[stem]
                raise ValueError(
                    f"{two_files} {stem!r}: {first.name}, {path.name}; if one is the other's mask, "
                    f"choose the images' extension (-O extensions={first.suffix[1:].lower()}: a file of "
                    f"another extension is then the mask) or name the mask {stem}{MASK_SUFFIX}"
                    f"{path.suffix}"
                )
            images[stem] = path
        else:
            candidates.setdefault(stem, []).append(path)
    masks: dict[str, Path] = {}
    for stem, paths in candidates.items():
        if stem in images and len(paths) > 1:
            names = ", ".join(path.name for path in paths)
            raise ValueError(f"{folder}: two masks for {images[stem].name}: {names}")
        if stem in images:
            masks[stem] = paths[0]
        elif paths[0].stem.endswith(MASK_SUFFIX):
            raise ValueError(f"{paths[0]}: a mask without its image: no {stem}.<ext> in {folder}")
    return images, masks


def _subfolders(folder: Path) -> list[Path]:
    """Sorted non-hidden subfolders."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _view_files(
    sample_dir: Path, extensions: frozenset[str] | None
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Map view name (file stem) to image file, and to mask file, in one sample folder."""
    return images_and_masks(sample_dir, extensions, f"{sample_dir}: two files for view")


def _samples(
    found: list[_Found], stems: dict[str, str], exact: bool, on_error: str
) -> tuple[list[dict[str, Path]], dict[str, list[str]], list[str | None], list[str], list[str]]:
    """Keep the sample folders holding the files ``stems`` names (exactly those, when ``exact``).

    Returns the files by view name (``stems`` maps file stem to view name),
    the mask file of each sample kept per view (``""`` for none; no views
    when no sample kept has a mask), the label (None without a label level)
    and the id (``"<label>/<sample_id>"``, or ``"<sample_id>"``) of each
    sample kept, and the messages of the folders skipped.
    """
    samples: list[dict[str, Path]] = []
    masks: dict[str, list[str]] = {view: [] for view in stems.values()}
    labels: list[str | None] = []
    ids: list[str] = []
    skipped: list[str] = []
    for label, sample_dir, files, mask_files in found:
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
        for name, view in stems.items():
            masks[view].append(str(mask_files.get(name, "")))
        labels.append(label)
        ids.append(sample_dir.name if label is None else f"{label}/{sample_dir.name}")
    known = any(any(column) for column in masks.values())
    return samples, masks if known else {}, labels, ids, skipped


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


def _find_samples(root: Path, extensions: frozenset[str] | None) -> list[_Found]:
    """List ``(label, sample folder, view files, mask files)``, telling the two layouts apart.

    A top-level folder holding image files is a sample (no label level); one
    holding folders is a label; an empty one is ignored. Mixing the two is an
    error.
    """
    sample_dirs, label_dirs = [], []
    for folder in _subfolders(root):
        if _view_files(folder, extensions)[0]:
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
            (label_dir.name, sample_dir, *_view_files(sample_dir, extensions))
            for label_dir in label_dirs
            for sample_dir in _subfolders(label_dir)
        ]
    return [(None, sample_dir, *_view_files(sample_dir, extensions)) for sample_dir in sample_dirs]


def plan_folder(
    root: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    extensions: ExtensionsOption = None,
    resize: str = DEFAULT_RESIZE,
) -> ImageListing:
    """List the samples of ``root/<label>/<sample_id>/<view>.<ext>`` or ``root/<sample_id>/<view>.<ext>``.

    Nothing is decoded. Each sample folder holds one image per view, named
    after the view (``left.png``, ``right.jpg``); the extensions in
    :data:`mmocc.data.images.IMAGE_EXTENSIONS` are recognised (``extensions``
    narrows them), other and hidden files are ignored. The layout is told
    from the folders: a top-level folder holding images is a sample, one
    holding folders a label. Label folder names that are all integers
    written as Python writes them (``"7"``, not ``"007"``) become int labels.

    Ground-truth masks (nonzero = defect) lie beside their images: the mask
    of view ``top`` is ``top_mask.<ext>`` or, when ``extensions`` excludes
    its extension, ``top.<ext>`` (``extensions="jpg"``: ``top.png`` is the
    mask of ``top.jpg``); see :func:`images_and_masks`. Once any sample
    folder holds a mask, every view of every sample has one: a view without
    a mask file is defect-free (an all-False mask).

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
        Images are resized to ``size`` x ``size`` (Lanczos; the aspect ratio
        as ``resize`` says).
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
    extensions : str or sequence of str, optional
        The extensions of the image files, e.g. ``"jpg"`` or ``"jpg,jpeg"``
        (``-O extensions=jpg``); files of other image extensions are masks
        when they share an image's stem, else ignored. Default: every image
        extension.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images (and masks) are brought to ``size`` x ``size``:
        ``"stretch"`` does not keep the aspect ratio; ``"pad"`` fits the
        image inside and pads it with zeros (defect-free in masks); ``"crop"`` covers the square and keeps its
        centre (see :mod:`mmocc.data.images`).

    Returns
    -------
    ImageListing
        The samples, with their mask files; :meth:`ImageListing.load`
        decodes them into what :func:`load_folder` returns.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        For a malformed ``views``, no samples (with a hint when the folder
        looks like a turntable collection or a camera folder), a mix of the
        two layouts, two files for one view in a sample folder (with a hint
        on ``extensions``), two masks for one view, a mask without its
        image, an unknown extension, or (with
        ``on_error="raise"``) a sample folder with different views; the
        message names the folder. Bad images are found when decoding.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs, resize)
    stems = view_map(views)
    chosen = image_extensions(extensions)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = _find_samples(root, chosen)
    if not found:
        raise ValueError(
            f"{root}: no samples found; expected {root}/<label>/<sample_id>/<view>.<ext> or "
            f"{root}/<sample_id>/<view>.<ext>{_no_samples_hint(root)}"
        )
    if stems is None:
        common, _ = Counter(frozenset(files) for _, _, files, _ in found).most_common(1)[0]
        stems = {name: name for name in sorted(common)}
    if not stems:
        raise ValueError(f"{root}: the sample folders hold no image files")
    samples, masks, labels, ids, skipped = _samples(found, stems, views is None, on_error)
    return ImageListing.build(
        samples,
        [f"sample {sample_id}" for sample_id in ids],
        ids=ids,
        labels=None if found[0][0] is None else labels_from_strings([str(label) for label in labels]),
        masks=masks,
        skipped=skipped,
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        resize=resize,
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
    extensions: ExtensionsOption = None,
    resize: str = DEFAULT_RESIZE,
) -> MultiViewDataset:
    """Load images laid out as ``root/<label>/<sample_id>/<view>.<ext>``: :func:`plan_folder`, decoded.

    Parameters
    ----------
    root, views, size, mode, cache, cache_dir, on_error, n_jobs, extensions, resize
        See :func:`plan_folder`, which also describes the two layouts and the masks.

    Returns
    -------
    MultiViewDataset
        uint8 ``(n, C, size, size)`` image views; labels from the label
        folder names (None without a label level); ids
        ``"<label>/<sample_id>"`` (or ``"<sample_id>"``); ``paths`` the
        image files; ``masks`` and ``mask_paths`` of every view when the
        folders hold masks, ``(n, size, size)``.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_folder`; with ``on_error="raise"`` also for an
        unreadable image or mask, or a mask whose size differs from its
        image's, named with its file.
    """
    return plan_folder(root, views, size, mode, cache, cache_dir, on_error, n_jobs, extensions, resize).load()
