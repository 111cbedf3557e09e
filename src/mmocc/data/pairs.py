"""Load unlabelled samples from one folder per camera, paired by file stem."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.folder import ExtensionsOption, image_extensions, images_and_masks
from mmocc.data.images import DEFAULT_RESIZE, check_image_options
from mmocc.data.listing import ImageListing
from mmocc.data.view_map import ViewsOption, view_map

_SHOWN = 10


def _named_folders(
    folders: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
) -> dict[str, Path]:
    """Name each camera folder: the mapping's keys, or the folder names."""
    if isinstance(folders, Mapping):
        named = {str(name): Path(folder) for name, folder in folders.items()}
    else:
        if isinstance(folders, (str, os.PathLike)):
            raise TypeError("folders must be a list of folders or a dict {view: folder}, not one path")
        paths = [Path(folder) for folder in folders]
        names = [path.resolve().name for path in paths]
        clashing = sorted({name for name in names if names.count(name) > 1})
        if clashing:
            raise ValueError(
                f"camera folders {[str(p) for p in paths]} share the name(s) {clashing}; name the views "
                "explicitly, e.g. pairs:left=DIR_A,right=DIR_B"
            )
        named = dict(zip(names, paths, strict=True))
    if len(named) < 1 or any(not name for name in named):
        raise ValueError(f"give at least one camera folder, each with a non-empty view name; got {folders!r}")
    for name, folder in named.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"view {name!r}: no such folder {str(folder)!r}")
    return named


def _select(named: dict[str, Path], views: ViewsOption) -> dict[str, Path]:
    """Keep the camera folders ``views`` names, in its order and under its view names."""
    folders = view_map(views)
    if folders is None:
        return named
    unknown = [name for name in folders if name not in named]
    if unknown:
        raise ValueError(
            f"views: no camera folder for view(s) {unknown}; the folders are views {list(named)}"
        )
    if not folders:
        raise ValueError("views: no view selected; give at least one camera folder")
    return {view: named[name] for name, view in folders.items()}


def _images_by_stem(
    view: str, folder: Path, extensions: frozenset[str] | None
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Map file stem to image file, and to mask file, in one camera folder (see :func:`images_and_masks`)."""
    two_files = f"view {view!r}: in {folder}, two files with the stem"
    files, masks = images_and_masks(folder, extensions, two_files)
    if not files:
        raise ValueError(f"view {view!r}: no image files in {folder}")
    return files, masks


def _unpaired(by_view: dict[str, dict[str, Path]], paired: set[str]) -> list[str]:
    """One line per file whose stem is missing from another view's folder."""
    lines = []
    for files in by_view.values():
        for stem, path in files.items():
            if stem not in paired:
                lacking = [other for other, theirs in by_view.items() if stem not in theirs]
                lines.append(f"{path} (no {stem!r} in view(s) {lacking})")
    return lines


def plan_pairs(
    folders: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    views: ViewsOption = None,
    extensions: ExtensionsOption = None,
    resize: str = DEFAULT_RESIZE,
) -> ImageListing:
    """List unlabelled samples from one folder per camera, paired by file stem, without decoding them.

    ``left/0001.png`` and ``right/0001.jpg`` are the two views of sample
    ``0001``. This is how two cameras usually write their images; such data
    has no labels and is meant to be scored. Files with the extensions in
    :data:`mmocc.data.images.IMAGE_EXTENSIONS` are used (``extensions``
    narrows them); hidden and other files are ignored; subfolders are not
    searched.

    Ground-truth masks (nonzero = defect) lie beside the images, as in the
    folder source (:func:`mmocc.data.folder.images_and_masks`): the mask of
    ``left/0001.jpg`` is ``left/0001_mask.<ext>`` or, when ``extensions``
    excludes its extension, ``left/0001.<ext>`` (``extensions="jpg"``:
    ``left/0001.png``). Masks do not take part in the pairing. Once any
    camera folder holds a mask, every view of every sample has one: a view
    without a mask file is defect-free (an all-False mask).

    Parameters
    ----------
    folders : dict of str to path-like, or sequence of path-like
        The folder of each view. From a sequence, the views are named after
        the folders (``pairs:cam1,cam2`` gives views ``cam1`` and ``cam2``).
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
        For a file without a partner in every other folder, or an
        unreadable image: raise, or drop the sample and warn once listing
        every skipped file.
    n_jobs : int, optional
        Decoding threads; default ``os.cpu_count()``.
    views : sequence of str, mapping of str to str or str, optional
        The views to read, by the names ``folders`` gives them, in order;
        default all. A mapping ``{name: view}``, or the string
        ``"cam1:front,cam2:side"``, also renames them (see
        :mod:`mmocc.data.view_map`).
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
        decodes them into what :func:`load_pairs` returns.

    Raises
    ------
    FileNotFoundError
        If a folder does not exist.
    ValueError
        For folders sharing a name (name the views instead), a malformed
        ``views`` or one naming no folder, a folder without images, two
        files with one stem in a folder (with a hint on ``extensions``), two
        masks for one image, a mask without its image, an unknown
        extension, no common stem, or (with
        ``on_error="raise"``) unpaired files, which the message names. Bad
        images are found when decoding.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs, resize)
    named = _select(_named_folders(folders), views)
    chosen = image_extensions(extensions)
    found = {view: _images_by_stem(view, folder, chosen) for view, folder in named.items()}
    by_view = {view: files for view, (files, _) in found.items()}
    stems = [set(files) for files in by_view.values()]
    paired = set.intersection(*stems)
    skipped: list[str] = []
    unpaired = _unpaired(by_view, paired)
    if unpaired:
        more = f"; ... ({len(unpaired)} in all)" if len(unpaired) > _SHOWN else ""
        if not paired or on_error == "raise":
            raise ValueError(f"{len(unpaired)} unpaired file(s): {'; '.join(unpaired[:_SHOWN])}{more}")
        skipped.extend(unpaired)
    order = sorted(paired)
    masks = {view: [str(found[view][1].get(stem, "")) for stem in order] for view in named}
    return ImageListing.build(
        [{view: by_view[view][stem] for view in named} for stem in order],
        [f"sample {stem!r}" for stem in order],
        ids=order,
        masks=masks if any(any(column) for column in masks.values()) else None,
        skipped=skipped,
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        resize=resize,
    )


def load_pairs(
    folders: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    views: ViewsOption = None,
    extensions: ExtensionsOption = None,
    resize: str = DEFAULT_RESIZE,
) -> MultiViewDataset:
    """Load unlabelled samples from one folder per camera, paired by stem: :func:`plan_pairs`, decoded.

    Parameters
    ----------
    folders, size, mode, cache, cache_dir, on_error, n_jobs, views, extensions, resize
        See :func:`plan_pairs`, which also says how files are paired and masks found.

    Returns
    -------
    MultiViewDataset
        Unlabelled (``labels`` is None); ids are the file stems, in sorted
        order; ``paths`` the image files; ``masks`` and ``mask_paths`` of
        every view when the folders hold masks.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_pairs`; with ``on_error="raise"`` also for an
        unreadable image, named with its file.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for cam in ("left", "right"):
    ...     (root / cam).mkdir()
    ...     for stem in ("a", "b"):
    ...         Image.new("L", (8, 8)).save(root / cam / f"{stem}.png")
    >>> ds = load_pairs([root / "left", root / "right"], size=8, cache=False)
    >>> ds.view_names, ds.ids.tolist(), ds.labels is None, ds.views["left"].shape
    (['left', 'right'], ['a', 'b'], True, (2, 1, 8, 8))
    """
    return plan_pairs(
        folders, size, mode, cache, cache_dir, on_error, n_jobs, views, extensions, resize
    ).load()
