"""The MVTec AD folder layout as a data source, ``mvtec:PATH``, with one view or several.

Single view, as MVTec AD itself::

    PATH/train/good/<name>.png              defect-free training images
    PATH/test/good/<name>.png               defect-free test images
    PATH/test/<type>/<name>.png             defective test images, one folder per defect type
    PATH/ground_truth/<type>/<name>_mask.png    their masks (optional)

Multi-view (several cameras or lightings of one part): every class folder
holds one folder per sample, with one file per view, named after the view::

    PATH/train/good/<sample>/<view>.png
    PATH/test/<type>/<sample>/<view>.png
    PATH/ground_truth/<type>/<sample>/<view>_mask.png

The layout is told from ``train/good``: images there mean one view (named
``"image"``), folders mean several. Images are ``.png``, ``.jpg``,
``.jpeg``, ``.bmp``, ``.tif`` or ``.tiff`` (:data:`MVTEC_EXTENSIONS`);
hidden entries, other files and other folders of ``PATH`` are ignored.

Labels are ``"good"`` or the defect type (the folder name); ids are
``"<split>/<label>/<name>"``; the metadata column ``"split"`` says
``"train"`` or ``"test"``, the dataset's own one-class protocol, which
:func:`mvtec_task` applies.

Masks (nonzero pixels = defect) are resized with the images, keeping every
defective pixel (:func:`mmocc.data.images.resize_mask`), and must have their
image's size. Defect-free samples get all-False masks. ``ground_truth/`` is
optional:

- without it the dataset has no masks (labels only);
- with it, a defective test sample without any mask file makes the masks of
  the whole dataset unknown (no masks, one warning counting such samples):
  a partial truth would score the others as defect-free;
- in the multi-view layout, a defective sample with a mask for some views
  is defect-free in its other views (a defect often shows in one camera
  only).
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from mmocc.data.dataset import MultiViewDataset, labels_from_strings
from mmocc.data.images import DEFAULT_RESIZE, check_image_options, reject
from mmocc.data.listing import ImageListing
from mmocc.data.tasks import SPLIT_METADATA, OneClassSplit, one_class_split, own_training_split
from mmocc.data.view_map import ViewsOption, view_map

#: File extensions of images and masks in the MVTec layout.
MVTEC_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
#: The label of defect-free samples, and the name of their folders.
NORMAL_LABEL = "good"
#: The view name of the single-view layout.
SINGLE_VIEW = "image"
#: What ends the stem of a mask file.
MASK_SUFFIX = "_mask"
_SHOWN = 5

#: One class folder: its split (``"train"``/``"test"``), its label, and its samples by name.
_Class = tuple[str, str, dict[str, dict[str, Path]]]
#: One sample: split, label, name and its image files by view stem.
_Sample = tuple[str, str, str, dict[str, Path]]


def _nfc(name: str) -> str:
    """Return a file or folder name in Unicode normal form NFC, so that NFC and NFD spellings match."""
    return unicodedata.normalize("NFC", name)


def _entries(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """Return a folder's images by NFC stem and its subfolders, sorted; hidden and other files are skipped."""
    files: dict[str, Path] = {}
    folders: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            folders.append(path)
        elif path.suffix.lower() in MVTEC_EXTENSIONS and path.is_file():
            stem = _nfc(path.stem)
            if stem in files:
                raise ValueError(f"{folder}: two images named {stem!r}: {files[stem].name}, {path.name}")
            files[stem] = path
    return files, folders


def _shown(names: list[str]) -> str:
    """Join the first few names."""
    return ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")


def _class_samples(folder: Path, multi_view: bool) -> dict[str, dict[str, Path]]:
    """Return the samples of a class folder: name to ``{view stem: file}``."""
    files, folders = _entries(folder)
    if multi_view and files:
        raise ValueError(
            f"{folder}: holds images ({_shown(list(files))}), but train/good holds sample folders: "
            "in the multi-view layout every class folder holds one folder per sample"
        )
    if not multi_view and folders:
        raise ValueError(
            f"{folder}: holds folders ({_shown([p.name for p in folders])}), but train/good holds images: "
            "in the single-view layout every class folder holds images"
        )
    if multi_view:
        return {_nfc(sample.name): _entries(sample)[0] for sample in folders}
    return {name: {SINGLE_VIEW: path} for name, path in files.items()}


def _classes(root: Path) -> tuple[bool, list[_Class]]:
    """Tell the layout from ``train/good``; return whether it is multi-view, and the class folders."""
    train = root / "train"
    if not (train / NORMAL_LABEL).is_dir():
        raise ValueError(
            f"{root}: no train/{NORMAL_LABEL} folder; an MVTec AD folder holds train/{NORMAL_LABEL}/, "
            "test/<type>/ and optionally ground_truth/<type>/"
        )
    others = [p.name for p in _entries(train)[1] if p.name != NORMAL_LABEL]
    if others:
        raise ValueError(
            f"{train}: holds {_shown(others)} besides {NORMAL_LABEL}/; the one-class protocol trains on "
            f"defect-free samples only: move defective ones to test/<type>/"
        )
    files, folders = _entries(train / NORMAL_LABEL)
    if not files and not folders:
        raise ValueError(f"{train / NORMAL_LABEL}: holds no images ({', '.join(sorted(MVTEC_EXTENSIONS))})")
    if files and folders:
        raise ValueError(
            f"{train / NORMAL_LABEL}: mixes images and folders; it holds either images (one view) "
            "or one folder per sample with one image per view"
        )
    multi_view = bool(folders)
    classes = [("train", NORMAL_LABEL, _class_samples(train / NORMAL_LABEL, multi_view))]
    if (root / "test").is_dir():
        stray, types = _entries(root / "test")
        if stray:
            raise ValueError(
                f"{root / 'test'}: holds images directly ({_shown(list(stray))}); put them in "
                f"test/<type>/ (test/{NORMAL_LABEL}/ for defect-free ones)"
            )
        classes += [("test", _nfc(folder.name), _class_samples(folder, multi_view)) for folder in types]
    return multi_view, classes


def _ground_truth(
    root: Path, multi_view: bool, classes: list[_Class]
) -> dict[tuple[str, str], dict[str, Path]] | None:
    """Return the mask files by (type, sample) and view stem; None without ``ground_truth/``."""
    folder = root / "ground_truth"
    if not folder.is_dir():
        return None
    tests = {label: samples for split, label, samples in classes if split == "test"}
    stray, types = _entries(folder)
    if stray:
        raise ValueError(
            f"{folder}: holds images directly ({_shown(list(stray))}); masks go in ground_truth/<type>/"
        )
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for type_dir in types:
        kind = _nfc(type_dir.name)
        if kind not in tests:
            raise ValueError(f"{type_dir}: masks without images: there is no test/{type_dir.name}/ folder")
        for name, files in _class_samples(type_dir, multi_view).items():
            for key, path in files.items():
                mask_stem = key if multi_view else name  # single view: the samples are the file stems
                if not mask_stem.endswith(MASK_SUFFIX):
                    raise ValueError(f"{path}: not a mask name; masks are named <name>{MASK_SUFFIX}.png")
                stem = mask_stem[: -len(MASK_SUFFIX)]
                sample, view = (name, stem) if multi_view else (stem, SINGLE_VIEW)
                if view not in tests[kind].get(sample, {}):
                    image = f"{sample}/{view}" if multi_view else sample
                    raise ValueError(
                        f"{path}: a mask without an image: no test/{type_dir.name}/{image}.<ext>"
                    )
                found.setdefault((kind, sample), {})[view] = path
    return found


def _complete(
    root: Path, found: list[_Sample], stems: dict[str, str], exact: bool, on_error: str
) -> tuple[list[_Sample], list[str]]:
    """Keep the samples holding the views ``stems`` names (exactly those, when ``exact``)."""
    known = set().union(*(files for *_, files in found))
    unknown = [stem for stem in stems if stem not in known]
    if unknown:
        raise ValueError(f"{root}: view(s) {unknown} not in the data; its views are {sorted(known)}")
    kept: list[_Sample] = []
    skipped: list[str] = []
    for split, label, name, files in found:
        missing = [stem for stem in stems if stem not in files]
        extra = sorted(set(files) - set(stems)) if exact else []
        if missing or extra:
            message = (
                f"{root / split / label / name}: views {sorted(files)} (missing {missing}, extra {extra})"
            )
            reject(message, on_error, skipped)
            continue
        kept.append((split, label, name, files))
    return kept, skipped


def _mask_files(
    root: Path,
    samples: list[_Sample],
    stems: dict[str, str],
    truth: dict[tuple[str, str], dict[str, Path]] | None,
) -> dict[str, list[str]] | None:
    """Return each sample's mask file per view ("" for none); None when masks are unknown."""
    if truth is None:
        return None
    masks: dict[str, list[str]] = {view: [] for view in stems.values()}
    missing = []
    for split, label, name, _ in samples:
        files = truth.get((label, name), {}) if split == "test" else {}
        if label != NORMAL_LABEL and not files:
            missing.append(f"test/{label}/{name}")
        for stem, view in stems.items():
            masks[view].append(str(files[stem]) if stem in files else "")
    if missing:
        warnings.warn(
            f"{root}: {len(missing)} defective test sample(s) have no mask in ground_truth/ "
            f"({_shown(missing)}); the dataset's masks are unknown (none loaded)",
            UserWarning,
            stacklevel=3,
        )
        return None
    return masks


def plan_mvtec(
    root: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    resize: str = DEFAULT_RESIZE,
) -> ImageListing:
    """List the samples of an MVTec AD folder (see the module docstring) without decoding them.

    Parameters
    ----------
    root : path-like
        The folder holding ``train/``, ``test/`` and optionally ``ground_truth/``.
    views : sequence of str, mapping of str to str or str, optional
        The views (file stems of the multi-view layout, ``"image"`` in the
        single-view one) to load, in order; a sample folder may hold more.
        By default every sample holds the same views, loaded in sorted
        order. A mapping ``{stem: view}``, or ``"image:top"``, also renames
        them (see :mod:`mmocc.data.view_map`).
    size : int, default 32
        Images and masks are resized to ``size`` x ``size`` (images with
        Lanczos, masks keeping every defective pixel; see ``resize``).
    mode : {"auto", "RGB", "L"}, default "auto"
        Colour mode: 3 or 1 channels; ``"auto"`` gives 1 channel when the
        first sample's images are greyscale.
    cache : bool, default True
        Cache the decoded arrays on disk and reuse them.
    cache_dir : path-like, optional
        Cache folder; default ``$MMOCC_CACHE_DIR``, else the user cache folder.
    on_error : {"raise", "skip"}, default "raise"
        For a sample whose views differ from the others', an unreadable
        image or mask, or a mask whose size differs from its image's:
        raise, or drop the sample and warn once listing every skipped file.
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
        The samples, with their mask files; :meth:`ImageListing.load`
        decodes them into what :func:`load_mvtec` returns.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        Naming the folder or file at fault: no ``train/good``, a class
        folder besides ``good`` in ``train/``, no images in ``train/good``,
        a class folder of the other layout, images directly in ``test/`` or
        ``ground_truth/``, two images with one stem, a mask folder without
        its ``test/<type>/``, a mask not named ``<name>_mask``, a mask
        without an image, an unknown view, or (with ``on_error="raise"``) a
        sample whose views differ from the others'.

    Warns
    -----
    UserWarning
        When ``ground_truth/`` exists but a defective test sample has no
        mask: the masks of the dataset are then unknown.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs, resize)
    stems = view_map(views)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    multi_view, classes = _classes(root)
    truth = _ground_truth(root, multi_view, classes)
    found = [
        (split, label, name, files) for split, label, samples in classes for name, files in samples.items()
    ]
    if stems is None:
        common, _ = Counter(frozenset(files) for *_, files in found).most_common(1)[0]
        stems = {stem: stem for stem in sorted(common)}
    if not stems:
        raise ValueError(f"{root}: the sample folders hold no images")
    samples, skipped = _complete(root, found, stems, views is None, on_error)
    ids = ["/".join(sample[:3]) for sample in samples]
    return ImageListing.build(
        [{view: files[stem] for stem, view in stems.items()} for *_, files in samples],
        [f"sample {sample_id}" for sample_id in ids],
        ids=ids,
        labels=labels_from_strings([label for _, label, _, _ in samples]),
        metadata={SPLIT_METADATA: np.asarray([split for split, *_ in samples], dtype=str)},
        masks=_mask_files(root, samples, stems, truth),
        skipped=skipped,
        origin=f"{root}: ",
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        resize=resize,
    )


def load_mvtec(
    root: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    resize: str = DEFAULT_RESIZE,
) -> MultiViewDataset:
    """Load an MVTec AD folder: :func:`plan_mvtec`, decoded into memory.

    Parameters
    ----------
    root, views, size, mode, cache, cache_dir, on_error, n_jobs, resize
        See :func:`plan_mvtec`; the module docstring describes the layouts.

    Returns
    -------
    MultiViewDataset
        uint8 ``(n, C, size, size)`` image views (``"image"`` in the
        single-view layout), labels ``"good"`` or the defect type, ids
        ``"<split>/<label>/<name>"``, metadata ``"split"`` (``"train"`` or
        ``"test"``), ``paths`` the image files, and, when known, bool
        ``(n, size, size)`` ``masks`` with their ``mask_paths`` (empty for
        a defect-free sample or view).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_mvtec`; with ``on_error="raise"`` also for an
        unreadable image or mask, or a mask whose size differs from its
        image's (naming the sample, the view and both sizes).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for part in ("train/good/0", "train/good/1", "test/good/2", "test/crack/3"):
    ...     (root / part).parent.mkdir(parents=True, exist_ok=True)
    ...     Image.new("L", (8, 8)).save(root / f"{part}.png")
    >>> ds = load_mvtec(root, size=4, cache=False)
    >>> ds.ids.tolist()
    ['train/good/0', 'train/good/1', 'test/crack/3', 'test/good/2']
    >>> ds.labels.tolist(), ds.metadata["split"].tolist(), ds.view_names, ds.masks
    (['good', 'good', 'crack', 'good'], ['train', 'train', 'test', 'test'], ['image'], {})
    """
    return plan_mvtec(root, views, size, mode, cache, cache_dir, on_error, n_jobs, resize).load()


def mvtec_task(dataset: MultiViewDataset) -> OneClassSplit:
    """Return the one-class task of an MVTec dataset: train on ``train/good``, test on ``test/``.

    It is :func:`mmocc.data.tasks.one_class_split` with ``normal="good"``
    and ``train_mask`` the samples whose ``"split"`` metadata is
    ``"train"``, so the task works wherever a one-class split does; the
    masks follow the samples.

    Parameters
    ----------
    dataset : MultiViewDataset
        Data from :func:`load_mvtec` (any dataset with the ``"split"``
        metadata and ``"good"`` labels), or a subset of it.

    Returns
    -------
    OneClassSplit
        ``train`` (the ``train/good`` samples), ``test`` (every test
        sample), ``y_test`` (0 for ``good``, 1 for a defect type).

    Raises
    ------
    ValueError
        Without the ``"split"`` metadata, or as :func:`one_class_split`
        does (no ``"good"`` label, fewer than 2 training or 1 test
        defect-free samples).

    Examples
    --------
    >>> ds = MultiViewDataset(
    ...     {"image": np.zeros((4, 1, 4, 4), np.uint8)},
    ...     labels=["good", "good", "good", "hole"],
    ...     metadata={"split": ["train", "train", "test", "test"]},
    ... )
    >>> task = mvtec_task(ds)
    >>> task.train_index.tolist(), task.y_test.tolist()
    ([0, 1], [0, 1])
    """
    train = own_training_split(dataset)
    if train is None:
        raise ValueError(
            f"mvtec_task needs the {SPLIT_METADATA!r} metadata ('train' or 'test' per sample) of an mvtec: "
            "dataset"
        )
    return one_class_split(dataset, NORMAL_LABEL, train_mask=train)
