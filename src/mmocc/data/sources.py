"""Data sources named by a SRC string, as the CLI and experiment configs use them.

A SRC string is one of:

- ``manifest:PATH``, or any path ending in ``.csv``:
  :func:`mmocc.datasets.load_manifest`;
- ``folder:PATH``, or any existing folder:
  :func:`mmocc.datasets.load_folder`;
- ``pairs:DIR_A,DIR_B`` or ``pairs:left=DIR_A,right=DIR_B``: one folder per
  camera, files paired by stem, unlabelled (:func:`mmocc.datasets.load_pairs`);
- ``turntable:PATH``: :func:`mmocc.datasets.load_turntable` (COIL-20 / COIL-100);
- ``mvtec:PATH``: :func:`mmocc.datasets.load_mvtec` (the MVTec AD layout,
  one view or several, with masks);
- ``mtile:PATH``: :func:`mmocc.datasets.load_mtile` (Magnetic-tile: six
  lightings of each tile, or one image at a time, with masks);
- ``mfeat:PATH``: :func:`mmocc.datasets.load_mfeat` (UCI Multiple Features);
- ``synthetic`` or ``synthetic:n_per_class=40,size=32``:
  :func:`mmocc.datasets.make_synthetic`.

Each kind is declared once, in :data:`SOURCES`: its SRC string form, its
loader and, for image sources, its planner.
Relative paths are resolved against the current working directory. Loader
options (``size``, ``mode``, ``resize``, ``delta_deg``, ...) come from the caller and are
checked against the loader's signature.
:func:`mmocc.data.streaming.plan_source` lists a source without decoding it
(with the kind's planner), for decoding chunk by chunk.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.folder import load_folder, plan_folder
from mmocc.data.manifest import load_manifest, plan_manifest
from mmocc.data.mfeat import load_mfeat
from mmocc.data.mtile import load_mtile, plan_mtile
from mmocc.data.mvtec import load_mvtec, plan_mvtec
from mmocc.data.pairs import load_pairs, plan_pairs
from mmocc.data.synthetic import make_synthetic
from mmocc.data.turntable import load_turntable, plan_turntable
from mmocc.utils.text import did_you_mean, parse_assignments

if TYPE_CHECKING:
    from mmocc.data.listing import ImageListing
    from mmocc.data.streaming import SourcePlan

_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9_]+):(.*)", re.DOTALL)


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
        names = list(inspect.signature(SOURCES[self.kind].load).parameters)
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

    def _call(self, function: Callable[..., Any], options: Mapping[str, Any]) -> Any:
        """Call this kind's loader or planner with the path and the options, checked."""
        merged = {**self.options, **options}
        self.check_options(merged)
        return function(**merged) if self.path is None else function(self.path, **merged)

    def listing(self, **options: Any) -> ImageListing | None:
        """List the samples without decoding them, where the kind can.

        Parameters
        ----------
        **options
            Loader options; they override options given in the SRC string.

        Returns
        -------
        ImageListing or None
            The samples of an image source; None for a kind without a
            planner (``mfeat``, ``synthetic``), which is loaded whole.

        Raises
        ------
        ValueError, FileNotFoundError
            For an unknown option, or whatever the planner rejects.
        """
        plan = SOURCES[self.kind].plan
        return None if plan is None else self._call(plan, options)

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
        return self._call(SOURCES[self.kind].load, options)


@dataclass(frozen=True)
class SourceKind:
    """One kind of data source: its SRC string form, and how it is listed and loaded.

    Attributes
    ----------
    name : str
        The kind, as written before the colon of a SRC string.
    load : callable
        The loader, returning a :class:`MultiViewDataset`: ``load(path,
        **options)`` for a kind read from a path, ``load(**options)``
        otherwise. Its keyword parameters are the source's options.
    plan : callable or None
        The planner, with the loader's parameters, listing the samples
        without decoding them (an :class:`mmocc.data.listing.ImageListing`);
        None for a kind loaded whole when planned.
    parse : callable or None
        ``parse(rest, text)`` reads ``rest``, the text after ``KIND:`` of the
        SRC string ``text``, into loader options, for a kind without a path;
        None: ``rest`` is the path.
    needs_file : bool
        The path is a file; otherwise a folder.
    claims : callable or None
        Tells whether a SRC string without ``KIND:`` is a path of this kind
        (kinds are asked in order); None: this kind is always named.
    bare : bool
        The kind's name alone is a SRC string.
    model_views : bool
        A model reading this source asks for its views by name through the
        ``views`` option (see :func:`mmocc.deploy.batch.model_data_options`),
        so that other views are not decoded and a missing one is an error.
    """

    name: str
    load: Callable[..., MultiViewDataset]
    plan: Callable[..., ImageListing] | None = None
    parse: Callable[[str, str], dict[str, Any]] | None = None
    needs_file: bool = False
    claims: Callable[[Path], bool] | None = None
    bare: bool = False
    model_views: bool = False

    def source(self, rest: str, text: str) -> Source:
        """Return the source of the SRC string ``text``, whose text after ``KIND:`` is ``rest``.

        Parameters
        ----------
        rest : str
            The text after ``KIND:`` (empty for a bare kind).
        text : str
            The whole SRC string, for messages.

        Returns
        -------
        Source
            The parsed source.

        Raises
        ------
        ValueError
            For a missing path, or what :attr:`parse` rejects.
        FileNotFoundError
            If the file or folder does not exist.
        """
        if self.parse is not None:
            return Source(self.name, None, text, self.parse(rest, text))
        if not rest:
            raise ValueError(f"data source {text!r} needs a path: {self.name}:PATH")
        return Source(self.name, _existing(Path(rest).expanduser(), text, self.needs_file), text)


def _synthetic_options(rest: str, text: str) -> dict[str, Any]:
    """Parse the options of ``synthetic:n_per_class=40,size=32``."""
    return parse_assignments(rest.split(","), "synthetic:") if rest else {}


def _pair_folders(rest: str, text: str) -> dict[str, Any]:
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
        return {"folders": [_existing(Path(item).expanduser(), text) for item in items]}
    folders = {}
    for item in items:
        name, _, folder = item.partition("=")
        if name.strip() in folders:
            raise ValueError(f"data source {text!r}: view {name.strip()!r} given twice")
        folders[name.strip()] = _existing(Path(folder.strip()).expanduser(), text)
    return {"folders": folders}


def _existing(path: Path, text: str, needs_file: bool = False) -> Path:
    """Check that a source's file (``needs_file``) or folder exists."""
    if needs_file:
        if not path.is_file():
            raise FileNotFoundError(f"data source {text!r}: no such file {str(path)!r}")
    elif not path.is_dir():
        raise FileNotFoundError(f"data source {text!r}: no such folder {str(path)!r}")
    return path


def _is_csv(path: Path) -> bool:
    """Whether a path names a CSV manifest (by its suffix)."""
    return path.suffix.lower() == ".csv"


SOURCES: Mapping[str, SourceKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            SourceKind(
                "manifest", load_manifest, plan_manifest, needs_file=True, claims=_is_csv, model_views=True
            ),
            SourceKind("folder", load_folder, plan_folder, claims=Path.is_dir, model_views=True),
            SourceKind("pairs", load_pairs, plan_pairs, parse=_pair_folders),
            SourceKind("turntable", load_turntable, plan_turntable),
            SourceKind("mvtec", load_mvtec, plan_mvtec, model_views=True),
            SourceKind("mtile", load_mtile, plan_mtile),
            SourceKind("mfeat", load_mfeat, model_views=True),
            SourceKind("synthetic", make_synthetic, parse=_synthetic_options, bare=True),
        )
    }
)
"""Every source kind, by name, in the order a bare path is matched (read-only)."""

SOURCE_KINDS: tuple[str, ...] = tuple(SOURCES)
"""The named source kinds of a SRC string."""


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
    if text in SOURCES and SOURCES[text].bare:
        return SOURCES[text].source("", text)
    match = _PREFIX.fullmatch(text)
    if match is not None and (match[1] in SOURCES or not Path(text).exists()):
        kind, rest = match[1], match[2]
        if kind not in SOURCES:
            raise ValueError(
                f"unknown data source kind {kind!r} in {text!r}{did_you_mean(kind, SOURCE_KINDS)} "
                f"(kinds: {', '.join(SOURCE_KINDS)}; or give a .csv manifest or a folder)"
            )
        return SOURCES[kind].source(rest, text)
    path = Path(text).expanduser()
    for source_kind in SOURCES.values():
        if source_kind.claims is not None and source_kind.claims(path):
            return Source(source_kind.name, _existing(path, text, source_kind.needs_file), text)
    if path.exists():
        raise ValueError(
            f"cannot tell the kind of data source {text!r}: it is neither a .csv manifest nor a folder; "
            f"prefix it with one of {', '.join(k + ':' for k in SOURCE_KINDS)}"
        )
    raise FileNotFoundError(f"data source {text!r}: no such file or folder")


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
