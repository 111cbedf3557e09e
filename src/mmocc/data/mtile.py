"""The Magnetic-tile surface-defect set as a data source, ``mtile:PATH``: six lightings of each tile.

The layout, as its authors publish it (Huang, Qiu and Yuan, "Surface defect
saliency of magnetic tile", The Visual Computer 36, 2020)::

    PATH/MT_<class>/Imgs/exp<k>_num_<n>.jpg     a tile under lighting k
    PATH/MT_<class>/Imgs/exp<k>_num_<n>.png     its mask (nonzero = defect)

The class is ``Free`` (defect-free, :data:`NORMAL_LABEL`) or a defect type
(``Blowhole``, ``Break``, ``Crack``, ``Fray``, ``Uneven``); it is the label.
Other files and folders of ``Imgs/`` are ignored.

**Runs.** Within a folder, sorted by ``<n>``, a run is a sequence of images
whose lightings ``k`` increase (1 to 6) along with ``<n>``. A complete run,
``exp1`` ... ``exp6``, is one tile photographed under the six lightings: by
default it is one sample with the views ``light1`` ... ``light6`` and their
masks. Other runs are dropped and reported in one warning that counts them
per kind of problem and per class, with the tiles and images kept:

- *repeated index*: the run ends or starts where a lighting (or a number)
  repeats (``... 5, 5, 6``);
- *out of order*: the lightings go back in the middle of a run
  (``1, 2, 4, 3, 4, 5``), as when two tiles' images interleave;
- *missing light*: a run cut short or with a gap (``3, 4, 5, 6`` or ``1, 2, 4, 5, 6``);
- *light outside 1-6*: an image such as ``exp0_num_743``, in no run.

The group of a sample is its tile. With ``per_image=True`` every image is
a sample of its own (one view, ``"image"``), for the per-image protocol;
its group is still the run it belongs to (complete or not), or the image
itself when it is in no run, so that a group split keeps a tile's
lightings together.

The crops of one tile differ a little between lightings and image sizes
vary (about 100-630 x 220-400 px): ``size`` and ``resize`` (see
:mod:`mmocc.data.images`) bring every image and mask to one square.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmocc.data.dataset import MultiViewDataset, labels_from_strings
from mmocc.data.images import DEFAULT_RESIZE, check_image_options
from mmocc.data.listing import ImageListing
from mmocc.utils.text import did_you_mean

#: Image file names: ``exp<lighting>_num_<number>``.
MTILE_NAME = re.compile(r"exp(\d+)_num_(\d+)")
#: Extensions of the images; their masks have the same stem and ``.png``.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg"})
#: The lightings of one tile.
LIGHTS = 6
#: The label of defect-free tiles (folder ``MT_Free``).
NORMAL_LABEL = "Free"
#: The view of the per-image layout.
SINGLE_VIEW = "image"
#: The prefix of the class folders.
CLASS_PREFIX = "MT_"

_REPEATED, _ORDER, _MISSING, _STRAY = "repeated index", "out of order", "missing light", "light outside 1-6"


@dataclass(frozen=True)
class _Image:
    """One image of a class folder: its class, lighting, number, file and mask file ("" for none)."""

    label: str
    light: int
    number: int
    path: Path
    mask: str

    @property
    def id(self) -> str:
        """The sample id of the image on its own: ``<class>/<file stem>``."""
        return f"{self.label}/{self.path.stem}"


@dataclass(frozen=True)
class _Run:
    """Consecutive images of one folder with increasing lightings, and why it ends on either side."""

    images: tuple[_Image, ...]
    problem: str | None

    @property
    def complete(self) -> bool:
        """Whether the run is one tile under lightings 1 to 6."""
        return [image.light for image in self.images] == list(range(1, LIGHTS + 1))

    @property
    def id(self) -> str:
        """The tile's id and group: ``<class>/num_<number of its first image>``."""
        return f"{self.images[0].label}/num_{self.images[0].number}"

    @property
    def kind(self) -> str:
        """What is wrong with an incomplete run (see the module docstring)."""
        return self.problem or _MISSING


def _class_folders(root: Path, classes: str | Sequence[str] | None) -> dict[str, Path]:
    """Return the ``Imgs/`` folder of each class to read, by class name, sorted."""
    found = {
        path.name[len(CLASS_PREFIX) :]: path
        for path in sorted(root.iterdir())
        if path.name.startswith(CLASS_PREFIX) and path.is_dir()
    }
    if not found:
        raise ValueError(
            f"{root}: no {CLASS_PREFIX}<class> folders; the Magnetic-tile layout is "
            f"{CLASS_PREFIX}<class>/Imgs/exp<k>_num_<n>.jpg with a .png mask of the same name"
        )
    wanted = list(found) if classes is None else _class_names(classes)
    for name in wanted:
        if name not in found:
            raise ValueError(
                f"{root}: no class {name!r}{did_you_mean(name, found)} (classes: {', '.join(found)})"
            )
    folders = {name: found[name] / "Imgs" for name in sorted(set(wanted))}
    for folder in folders.values():
        if not folder.is_dir():
            raise ValueError(f"{folder.parent}: no Imgs/ folder (the images are {folder}/exp<k>_num_<n>.jpg)")
    return folders


def _class_names(classes: str | Sequence[str]) -> list[str]:
    """Read the ``classes`` option: names, or one string of comma-separated names."""
    names = [part.strip() for part in classes.split(",")] if isinstance(classes, str) else list(classes)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"classes must be class names such as ['Free', 'Blowhole'], got {classes!r}")
    return names


def _images(label: str, folder: Path) -> list[_Image]:
    """Return the images of a class folder, sorted by number then lighting."""
    entries = {path.name: path for path in folder.iterdir() if not path.name.startswith(".")}
    found = []
    for path in entries.values():
        match = MTILE_NAME.fullmatch(path.stem)
        if match is None or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        mask = path.with_suffix(".png")
        # a defect-free image needs no mask file; a defective one's missing mask is an error when decoded
        known = mask.name in entries or label != NORMAL_LABEL
        found.append(_Image(label, int(match[1]), int(match[2]), path, str(mask) if known else ""))
    if not found:
        raise ValueError(f"{folder}: no images named exp<k>_num_<n>.jpg")
    return sorted(found, key=lambda image: (image.number, image.light))


def _break(previous: _Image, image: _Image) -> str | None:
    """Tell what a run boundary between two images says is wrong; None for a clean one (a new tile)."""
    if image.light == previous.light or image.number == previous.number:
        return _REPEATED
    if image.light < previous.light and previous.light != LIGHTS and image.light != 1:
        return _ORDER
    return None


def _runs(images: list[_Image]) -> tuple[list[_Run], list[_Image]]:
    """Split a folder's sorted images into runs, and the images in no run (lighting outside 1-6)."""
    groups: list[list[_Image]] = []
    breaks: list[str | None] = []  # breaks[i]: the boundary before groups[i]
    strays: list[_Image] = []
    last: _Image | None = None
    for image in images:
        if not 1 <= image.light <= LIGHTS:
            strays.append(image)
            last = None
        elif last is not None and image.light > last.light and image.number > last.number:
            groups[-1].append(image)
            last = image
        else:
            breaks.append(None if last is None else _break(last, image))
            groups.append([image])
            last = image
    ends = [*breaks[1:], None]
    problems = [
        next((kind for kind in (_REPEATED, _ORDER) if kind in pair), None)
        for pair in zip(breaks, ends, strict=True)
    ]
    return [_Run(tuple(group), problem) for group, problem in zip(groups, problems, strict=True)], strays


def _report(root: Path, runs: list[_Run], strays: list[_Image], n_images: int) -> None:
    """Warn once about the runs dropped, per kind and class, with what is kept."""
    dropped = [run for run in runs if not run.complete]
    if not dropped and not strays:
        return
    kept = len(runs) - len(dropped)
    parts = []
    for kind in (_REPEATED, _ORDER, _MISSING):
        mine = [run for run in dropped if run.kind == kind]
        if mine:
            n_runs = Counter(run.images[0].label for run in mine)
            n_in = Counter(image.label for run in mine for image in run.images)
            per_class = ", ".join(f"{label} {n_runs[label]}/{n_in[label]}" for label in sorted(n_runs))
            parts.append(f"{kind}: {len(mine)} runs, {sum(n_in.values())} images ({per_class})")
    if strays:
        per_class = ", ".join(f"{label} {n}" for label, n in sorted(Counter(i.label for i in strays).items()))
        parts.append(f"{_STRAY}: {len(strays)} images ({per_class})")
    warnings.warn(
        f"{root}: kept {kept} complete tiles ({kept * LIGHTS} of {n_images} images); dropped "
        f"{n_images - kept * LIGHTS} images of runs that are not exp1..exp6 (runs/images per class): "
        + "; ".join(parts)
        + "; per_image=True keeps every image",
        UserWarning,
        stacklevel=3,
    )


def _samples(
    runs: list[_Run], strays: list[_Image], per_image: bool
) -> tuple[list[dict[str, _Image]], list[str], list[str], list[str]]:
    """Return each sample's images by view, and its id, label and group."""
    if per_image:
        pairs = [(image, run.id) for run in runs for image in run.images] + [(i, i.id) for i in strays]
        pairs.sort(key=lambda pair: (pair[0].label, pair[0].number, pair[0].light))
        return (
            [{SINGLE_VIEW: image} for image, _ in pairs],
            [image.id for image, _ in pairs],
            [image.label for image, _ in pairs],
            [group for _, group in pairs],
        )
    tiles = [run for run in runs if run.complete]
    views = [{f"light{image.light}": image for image in run.images} for run in tiles]
    ids = [run.id for run in tiles]
    return views, ids, [run.images[0].label for run in tiles], ids


def plan_mtile(
    root: str | os.PathLike[str],
    per_image: bool = False,
    classes: str | Sequence[str] | None = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    resize: str = DEFAULT_RESIZE,
) -> ImageListing:
    """List the tiles (or images) of a Magnetic-tile folder without decoding them.

    Parameters
    ----------
    root : path-like
        The folder holding ``MT_<class>/Imgs/`` (see the module docstring).
    per_image : bool, default False
        False: one sample per complete tile, views ``light1`` ...
        ``light6``, broken runs dropped with one warning. True: one sample
        per image (every image, view ``"image"``), metadata ``"light"``.
    classes : sequence of str or str, optional
        The classes to read (``["Free", "Blowhole"]`` or
        ``"Free,Blowhole"``); default every ``MT_<class>`` folder.
    size : int, default 32
        Images and masks are resized to ``size`` x ``size`` (images with
        Lanczos, masks keeping every defective pixel; see ``resize``).
    mode : {"auto", "RGB", "L"}, default "auto"
        Colour mode: 3 or 1 channels; ``"auto"`` gives 1 channel for these
        greyscale images.
    cache : bool, default True
        Cache the decoded arrays on disk and reuse them.
    cache_dir : path-like, optional
        Cache folder; default ``$MMOCC_CACHE_DIR``, else the user cache folder.
    on_error : {"raise", "skip"}, default "raise"
        For an unreadable image or mask, a defective image without its
        mask, or a mask whose size differs from its image's: raise, or drop
        the sample and warn once listing every skipped file.
    n_jobs : int, optional
        Decoding threads; default ``os.cpu_count()``.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images (and masks) are brought to ``size`` x ``size``:
        ``"stretch"`` does not keep the aspect ratio; ``"pad"`` fits the
        image inside and pads it with zeros (defect-free in masks); ``"crop"`` covers the square and keeps its
        centre, losing defects near the ends of a long tile (see
        :mod:`mmocc.data.images`).

    Returns
    -------
    ImageListing
        The samples, with their mask files; :meth:`ImageListing.load`
        decodes them into what :func:`load_mtile` returns.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        For invalid options (an unknown class, with the closest one), no
        ``MT_<class>`` folder, a class folder without ``Imgs/`` or without
        images, or no complete tile (by tiles).

    Warns
    -----
    UserWarning
        By tiles, when runs are dropped: one warning counting them per
        kind of problem and per class.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs, resize)
    if not isinstance(per_image, (bool, np.bool_)):
        raise ValueError(f"per_image must be true or false, got {per_image!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    runs: list[_Run] = []
    strays: list[_Image] = []
    n_images = 0
    for label, folder in _class_folders(root, classes).items():
        images = _images(label, folder)
        n_images += len(images)
        found, stray = _runs(images)
        runs += found
        strays += stray
    if not per_image:
        _report(root, runs, strays, n_images)
        if not any(run.complete for run in runs):
            raise ValueError(
                f"{root}: no complete tile (a run exp1 ... exp6); per_image=True reads the images"
            )
    samples, ids, labels, groups = _samples(runs, strays, bool(per_image))
    views = list(samples[0])
    return ImageListing.build(
        [{view: sample[view].path for view in views} for sample in samples],
        [f"{'image' if per_image else 'tile'} {sample_id}" for sample_id in ids],
        ids=ids,
        labels=labels_from_strings(labels),
        groups=np.asarray(groups, dtype=str),
        metadata={"light": np.asarray([s[SINGLE_VIEW].light for s in samples])} if per_image else None,
        masks={view: [sample[view].mask for sample in samples] for view in views},
        origin=f"{root}: ",
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        resize=resize,
    )


def load_mtile(
    root: str | os.PathLike[str],
    per_image: bool = False,
    classes: str | Sequence[str] | None = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    resize: str = DEFAULT_RESIZE,
) -> MultiViewDataset:
    """Load a Magnetic-tile folder: :func:`plan_mtile`, decoded into memory.

    Parameters
    ----------
    root, per_image, classes, size, mode, cache, cache_dir, on_error, n_jobs, resize
        See :func:`plan_mtile`; the module docstring describes the layout and the runs.

    Returns
    -------
    MultiViewDataset
        By tiles: six uint8 ``(n, C, size, size)`` views ``light1`` ...
        ``light6`` with bool ``(n, size, size)`` masks, ids and groups
        ``"<class>/num_<n of exp1>"``. Per image: one view ``"image"``,
        ids ``"<class>/exp<k>_num_<n>"``, groups the tile's run, metadata
        ``"light"``. Labels are the class names (``"Free"`` = defect-free);
        ``paths`` and ``mask_paths`` the files.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_mtile`; with ``on_error="raise"`` also for an
        unreadable image or mask, a defective image without its mask, or
        a mask whose size differs from its image's (naming the sample, the
        view and the file).

    Examples
    --------
    >>> ds = load_mtile("../shared/data/magnetic-tile", classes="Free", size=32)  # doctest: +SKIP
    >>> len(ds), ds.view_names[:2], ds.groups[0]  # doctest: +SKIP
    (148, ['light1', 'light2'], 'Free/num_1810')
    """
    return plan_mtile(root, per_image, classes, size, mode, cache, cache_dir, on_error, n_jobs, resize).load()
