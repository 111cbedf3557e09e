"""Data sources named by a SRC string, as the CLI and experiment configs use them.

A SRC string is one of:

- ``manifest:PATH``, or any path ending in ``.csv``:
  :func:`mmocc.datasets.load_manifest`;
- ``folder:PATH``, or any existing folder:
  :func:`mmocc.datasets.load_folder`;
- ``pairs:DIR_A,DIR_B`` or ``pairs:left=DIR_A,right=DIR_B``: one folder per
  camera, files paired by stem, unlabelled (:func:`mmocc.datasets.load_pairs`);
- ``turntable:PATH``: :func:`mmocc.datasets.load_turntable` (COIL-20 / COIL-100);
- ``mfeat:PATH``: :func:`mmocc.datasets.load_mfeat` (UCI Multiple Features);
- ``synthetic`` or ``synthetic:n_per_class=40,size=32``:
  :func:`mmocc.datasets.make_synthetic`.

Relative paths are resolved against the current working directory. Loader
options (``size``, ``mode``, ``delta_deg``, ...) come from the caller and are
checked against the loader's signature.
:func:`mmocc.data.streaming.plan_source` lists a source without decoding it,
for decoding chunk by chunk.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmocc.data import (
    MultiViewDataset,
    load_folder,
    load_manifest,
    load_mfeat,
    load_pairs,
    load_turntable,
    make_synthetic,
)
from mmocc.utils.text import did_you_mean, parse_assignments

if TYPE_CHECKING:
    from mmocc.data.streaming import SourcePlan

_LOADERS: dict[str, Callable[..., MultiViewDataset]] = {
    "manifest": load_manifest,
    "folder": load_folder,
    "pairs": load_pairs,
    "turntable": load_turntable,
    "mfeat": load_mfeat,
    "synthetic": make_synthetic,
}
SOURCE_KINDS: tuple[str, ...] = tuple(_LOADERS)
"""The named source kinds of a SRC string."""

_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9_]+):(.*)", re.DOTALL)
_NEEDS_FILE = frozenset({"manifest"})


@dataclass(frozen=True)
class Source:
    """A parsed SRC string.

    Attributes
    ----------
    kind : str
        One of :data:`SOURCE_KINDS`.
    path : pathlib.Path or None
        The file or folder (None for ``synthetic`` and ``pairs``).
    options : dict
        Options given inside the SRC string (``synthetic:...``, and the
        ``folders`` of ``pairs:...``).
    text : str
        The SRC string as given.
    """

    kind: str
    path: Path | None
    text: str
    options: dict[str, Any] = field(default_factory=dict)

    def option_names(self) -> tuple[str, ...]:
        """Return the loader options this source accepts.

        Returns
        -------
        tuple of str
            Keyword parameters of the loader, without its path parameter.
        """
        names = list(inspect.signature(_LOADERS[self.kind]).parameters)
        return tuple(names if self.path is None else names[1:])

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise if an option is not a parameter of this source's loader.

        Parameters
        ----------
        options : mapping
            Loader options.

        Raises
        ------
        ValueError
            Naming the option, the closest valid one and all valid ones.
        """
        valid = self.option_names()
        for key in options:
            if key not in valid:
                raise ValueError(
                    f"the {self.kind} source has no option {key!r}{did_you_mean(key, valid)} "
                    f"(options: {', '.join(valid)})"
                )

    def load(self, **options: Any) -> MultiViewDataset:
        """Load the dataset.

        Parameters
        ----------
        **options
            Loader options; they override options given in the SRC string.

        Returns
        -------
        MultiViewDataset
            The data.

        Raises
        ------
        ValueError
            For an unknown option, or whatever the loader rejects.
        """
        merged = {**self.options, **options}
        self.check_options(merged)
        loader = _LOADERS[self.kind]
        return loader(**merged) if self.path is None else loader(self.path, **merged)


def parse_source(text: str) -> Source:
    """Parse a SRC string and check that its file or folder exists.

    Parameters
    ----------
    text : str
        The SRC string (see the module docstring).

    Returns
    -------
    Source
        The parsed source.

    Raises
    ------
    ValueError
        For an empty string, an unknown source kind (with a suggestion), a
        missing path after ``KIND:``, a bad ``synthetic:`` option, or a file
        whose kind cannot be told from its name.
    FileNotFoundError
        If the file or folder does not exist.

    Examples
    --------
    >>> parse_source("synthetic:n_per_class=40,size=32").options
    {'n_per_class': 40, 'size': 32}
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the data source is empty; give e.g. turntable:PATH, folder:PATH or synthetic")
    text = text.strip()
    if text == "synthetic":
        return Source("synthetic", None, text)
    match = _PREFIX.fullmatch(text)
    if match is not None and (match[1] in SOURCE_KINDS or not Path(text).exists()):
        kind, rest = match[1], match[2]
        if kind not in SOURCE_KINDS:
            raise ValueError(
                f"unknown data source kind {kind!r} in {text!r}{did_you_mean(kind, SOURCE_KINDS)} "
                f"(kinds: {', '.join(SOURCE_KINDS)}; or give a .csv manifest or a folder)"
            )
        if kind == "synthetic":
            return Source(kind, None, text, parse_assignments(rest.split(","), "synthetic:") if rest else {})
        if kind == "pairs":
            return Source(kind, None, text, {"folders": _pair_folders(rest, text)})
        if not rest:
            raise ValueError(f"data source {text!r} needs a path: {kind}:PATH")
        return Source(kind, _existing(Path(rest).expanduser(), kind, text), text)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".csv":
        return Source("manifest", _existing(path, "manifest", text), text)
    if path.is_dir():
        return Source("folder", path, text)
    if path.exists():
        raise ValueError(
            f"cannot tell the kind of data source {text!r}: it is neither a .csv manifest nor a folder; "
            f"prefix it with one of {', '.join(k + ':' for k in SOURCE_KINDS)}"
        )
    raise FileNotFoundError(f"data source {text!r}: no such file or folder")


def _pair_folders(rest: str, text: str) -> dict[str, Path] | list[Path]:
    """Parse the folders of ``pairs:DIR_A,DIR_B`` or ``pairs:left=DIR_A,right=DIR_B``."""
    items = [item.strip() for item in rest.split(",") if item.strip()]
    if not items:
        raise ValueError(
            f"data source {text!r} needs folders: pairs:DIR_A,DIR_B or pairs:left=DIR_A,right=DIR_B"
        )
    named = ["=" in item for item in items]
    if any(named) and not all(named):
        raise ValueError(f"data source {text!r}: name every folder (VIEW=DIR) or none")
    if not all(named):
        return [_existing(Path(item).expanduser(), "pairs", text) for item in items]
    folders = {}
    for item in items:
        name, _, folder = item.partition("=")
        if name.strip() in folders:
            raise ValueError(f"data source {text!r}: view {name.strip()!r} given twice")
        folders[name.strip()] = _existing(Path(folder.strip()).expanduser(), "pairs", text)
    return folders


def _existing(path: Path, kind: str, text: str) -> Path:
    """Check that a source's file (manifest) or folder (other kinds) exists."""
    if kind in _NEEDS_FILE:
        if not path.is_file():
            raise FileNotFoundError(f"data source {text!r}: no such file {str(path)!r}")
    elif not path.is_dir():
        raise FileNotFoundError(f"data source {text!r}: no such folder {str(path)!r}")
    return path


def load_source(source: str | Source, **options: Any) -> MultiViewDataset:
    """Parse a SRC string and load its dataset.

    Parameters
    ----------
    source : str or Source
        The SRC string, or an already parsed source.
    **options
        Loader options (``size``, ``mode``, ...).

    Returns
    -------
    MultiViewDataset
        The data.

    Examples
    --------
    >>> ds = load_source("synthetic:n_per_class=5,n_classes=2", size=8)
    >>> len(ds), ds.view_names
    (10, ['dorsal', 'lateral'])
    """
    parsed = parse_source(source) if isinstance(source, str) else source
    return parsed.load(**options)


def find_label(dataset: MultiViewDataset | SourcePlan, label: Any) -> Any:
    """Return the dataset label whose string form equals ``str(label)``.

    Labels typed on the command line or in a config are strings or ints;
    dataset labels may be ints or strings. They are matched by string form.

    Parameters
    ----------
    dataset : MultiViewDataset or SourcePlan
        The data, or its plan (:mod:`mmocc.data.streaming`).
    label : str or int
        The label as typed.

    Returns
    -------
    Any
        The label as stored in the dataset.

    Raises
    ------
    ValueError
        If the data is unlabelled, or no label matches; the message lists
        the available labels.

    Examples
    --------
    >>> ds = load_source("synthetic:n_per_class=5,n_classes=2", size=8)
    >>> find_label(ds, "1")
    1
    """
    dataset.require_labels(f"selecting class {str(label)!r}")
    classes = dataset.classes.tolist()
    by_text = {str(value): value for value in classes}
    if str(label) in by_text:
        return by_text[str(label)]
    shown = ", ".join(map(str, classes[:30])) + (
        f", ... ({len(classes)} in all)" if len(classes) > 30 else ""
    )
    raise ValueError(
        f"label {str(label)!r} is not in the data{did_you_mean(label, by_text)}; labels: {shown}"
    )


def describe(dataset: MultiViewDataset) -> dict[str, Any]:
    """Summarise a dataset as a JSON-serialisable dict.

    Parameters
    ----------
    dataset : MultiViewDataset
        The data.

    Returns
    -------
    dict
        ``n_samples``, ``views`` (name to per-sample shape and dtype) and
        ``classes`` with their sample counts (empty for unlabelled data).
    """
    labels = np.zeros(0) if dataset.labels is None else dataset.labels
    classes, counts = np.unique(labels, return_counts=True)
    return {
        "n_samples": len(dataset),
        "views": {
            name: {"shape": list(array.shape[1:]), "dtype": str(array.dtype)}
            for name, array in dataset.views.items()
        },
        "classes": {str(c): int(n) for c, n in zip(classes.tolist(), counts.tolist(), strict=True)},
    }
