"""Load a dataset described by a CSV manifest: one row per sample, one column per view."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from mmocc.data.dataset import MultiViewDataset, labels_from_strings
from mmocc.data.images import DEFAULT_RESIZE, check_image_options, reject
from mmocc.data.listing import ImageListing
from mmocc.data.view_map import ViewsOption, view_map
from mmocc.utils.files import read_utf8

#: Manifest columns that are not views.
RESERVED_COLUMNS = ("sample_id", "label", "group")
#: Prefix of the column holding the ground-truth masks of a view: ``mask_<view column>``.
MASK_PREFIX = "mask_"


def _view_path(root: Path, value: str, where: str) -> Path:
    """Resolve a manifest cell: an absolute path as it is, a relative one against ``root``.

    Paths may leave ``root`` (``../store/x.png``, ``/data/x.png``): a
    manifest points at the user's image store, wherever it is. What is not
    a regular file (a folder, device or named pipe) is refused when decoded.
    """
    if "\x00" in value:
        raise ValueError(f"{where}: path {value!r} contains a NUL character")
    return Path(os.path.normpath(root / value))


def _paths_root(csv_path: Path, root: str | os.PathLike[str] | None) -> Path:
    """Return the absolute folder relative paths are resolved against: ``root``, else the CSV's folder."""
    if root is None:
        return Path(os.path.abspath(csv_path.parent))
    folder = Path(os.path.abspath(Path(root).expanduser()))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{csv_path}: root folder {str(root)!r} (option root, against which the manifest's relative "
            f"paths are resolved) {'is not a folder' if folder.exists() else 'does not exist'}"
        )
    return folder


def _check_header(csv_path: Path, header: list[str]) -> None:
    """Refuse an empty header, a column without a name or duplicate column names."""
    if not any(header):
        raise ValueError(
            f"{csv_path}: empty manifest; expected a header row with sample_id, views, optionally label"
        )
    if "" in header:
        raise ValueError(f"{csv_path}: column {header.index('') + 1} of the header has no name")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ValueError(f"{csv_path}: duplicate column(s) {duplicated} in the header")


def _read_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Return the stripped header and ``(line number, row)`` pairs of non-blank rows."""
    reader = csv.reader(io.StringIO(read_utf8(csv_path, bom=True), newline=""))
    rows = []
    try:
        header = [cell.strip() for cell in next(reader, [])]
        _check_header(csv_path, header)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise ValueError(
                    f"{csv_path} line {reader.line_num}: expected {len(header)} fields, got {len(cells)}"
                )
            rows.append((reader.line_num, dict(zip(header, (cell.strip() for cell in cells), strict=True))))
    except csv.Error as exc:
        raise ValueError(f"{csv_path} line {reader.line_num}: malformed CSV: {exc}") from None
    return header, rows


def _mask_columns(csv_path: Path, header: list[str]) -> dict[str, str]:
    """Map each view column that has a ``mask_<column>`` column to that mask column."""
    masks = {}
    for name in header:
        if not name.startswith(MASK_PREFIX):
            continue
        column = name[len(MASK_PREFIX) :]
        if column not in header or column in RESERVED_COLUMNS or column.startswith(MASK_PREFIX):
            raise ValueError(
                f"{csv_path}: column {name!r} holds masks ({MASK_PREFIX}<view>), but there is no "
                f"view column {column!r}"
            )
        masks[column] = name
    return masks


def _view_columns(
    csv_path: Path, header: list[str], columns: dict[str, str] | None
) -> tuple[list[str], dict[str, str]]:
    """Check the header; return the columns that are neither reserved nor masks, and the view columns to load.

    The view columns come with their view names.
    """
    if "sample_id" not in header:
        raise ValueError(f"{csv_path}: missing column 'sample_id'; found columns {header}")
    available = [name for name in header if name not in RESERVED_COLUMNS and not name.startswith(MASK_PREFIX)]
    if columns is None:
        columns = {name: name for name in available}
    unknown = [name for name in columns if name not in available]
    if unknown:
        raise ValueError(f"{csv_path}: view column(s) {unknown} not found; view columns are {available}")
    if not columns:
        raise ValueError(f"{csv_path}: no view columns; found columns {header}")
    return available, columns


def _samples(
    csv_path: Path,
    rows: list[tuple[int, dict[str, str]]],
    columns: dict[str, str],
    mask_columns: dict[str, str],
    on_error: str,
    root: Path,
) -> tuple[list[dict[str, Path]], dict[str, list[str]], list[str], list[int], list[str]]:
    """Check ids, labels and paths row by row; relative paths are resolved against ``root``.

    Returns the files of each sample to decode by view name (``columns``
    maps view column to view name), the mask file of each sample per view
    with a mask column (``mask_columns`` maps view column to mask column; an
    empty cell gives ``""``), each sample's error-message context and row
    number, and the messages of the rows skipped.
    """
    first_line: dict[str, int] = {}
    samples: list[dict[str, Path]] = []
    masks: dict[str, list[str]] = {columns[name]: [] for name in columns if name in mask_columns}
    contexts: list[str] = []
    sample_rows: list[int] = []
    skipped: list[str] = []
    for number, (line, row) in enumerate(rows):
        where = f"{csv_path.name} line {line}"
        for required in ("sample_id", "label"):
            if required in row and not row[required]:
                raise ValueError(f"{where}: empty {required}")
        sample_id = row["sample_id"]
        if sample_id in first_line:
            raise ValueError(
                f"{where}: duplicate sample_id {sample_id!r} (first on line {first_line[sample_id]})"
            )
        first_line[sample_id] = line
        where = f"{where} (sample_id {sample_id!r})"
        empty = [name for name in columns if not row[name]]
        if empty:
            reject(f"{where}: empty path for view(s) {empty}", on_error, skipped)
            continue
        samples.append(
            {view: _view_path(root, row[name], f"{where}, view {name!r}") for name, view in columns.items()}
        )
        for name, view in columns.items():
            if view in masks:
                cell = row[mask_columns[name]]
                masks[view].append(
                    str(_view_path(root, cell, f"{where}, {mask_columns[name]!r}")) if cell else ""
                )
        contexts.append(where)
        sample_rows.append(number)
    return samples, masks, contexts, sample_rows, skipped


def plan_manifest(
    csv_path: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    root: str | os.PathLike[str] | None = None,
    resize: str = DEFAULT_RESIZE,
) -> ImageListing:
    """List the samples of a CSV manifest without decoding them.

    The manifest has a header row and one row per sample. Columns:

    - ``sample_id`` (required): a unique id per row.
    - ``label`` (optional): the class. Labels that are all integers written
      as Python writes them (``"7"``, ``"-2"``; not ``"007"`` or ``"+7"``)
      become ints, others keep their text. Without it the data is
      unlabelled (new samples to score).
    - ``group`` (optional): specimen / individual / object id, used by
      group splits; read as labels are.
    - one column per view, holding an image path: absolute, or relative to
      the manifest's folder (to ``root`` when given). Paths may lead out of
      that folder, to wherever the images are stored.
    - ``mask_<view column>`` (optional): the ground-truth mask of that view,
      an image of the same size as the view's image whose nonzero pixels
      are defects, as a path like the view's; an empty cell is a sample
      without defect (an all-False mask). Masks are resized with the images,
      keeping every defective pixel (see :func:`mmocc.data.images.resize_mask`).
    - any other column not selected by ``views`` becomes string metadata.

    A FIN-Benthic2 user writes one row per (individual, image pair): its
    ``Machine_learning_splits.txt`` gives the individual, the taxon and the
    image ids, and the images live under ``Images/<individual>/<image>``.
    Put the manifest next to ``Images/``, with ``label`` = taxon, ``group`` =
    individual and two view columns holding ``Images/<individual>/<image>``
    of the image from each camera::

        sample_id,label,group,left,right
        ind1_01,Baetis,ind1,Images/ind1/img_01_cam1.png,Images/ind1/img_01_cam2.png

    An inspection manifest with masks for the camera ``top``::

        sample_id,label,top,mask_top
        part1,good,img/part1.png,
        part2,scratch,img/part2.png,masks/part2.png

    Parameters
    ----------
    csv_path : path-like
        The manifest (UTF-8, a byte-order mark is allowed).
    views : sequence of str, mapping of str to str or str, optional
        The view columns to load, in order; default all non-reserved
        columns, in file order. A mapping ``{column: view}``, or the string
        ``"left:front,right:side"``, also renames them (see
        :mod:`mmocc.data.view_map`).
    size : int, default 32
        Images are resized to ``size`` x ``size`` (Lanczos; the aspect ratio
        as ``resize`` says).
    mode : {"auto", "RGB", "L"}, default "auto"
        Colour mode: 3 or 1 channels; ``"auto"`` gives 1 channel when the
        first row's images are greyscale.
    cache : bool, default True
        Cache the decoded arrays on disk and reuse them.
    cache_dir : path-like, optional
        Cache folder; default ``$MMOCC_CACHE_DIR``, else the user cache folder.
    on_error : {"raise", "skip"}, default "raise"
        For a missing or unreadable image or an empty path cell: raise, or
        drop the sample and warn once listing every skipped file.
    n_jobs : int, optional
        Decoding threads; default ``os.cpu_count()``.
    root : path-like, optional
        The folder relative paths (of views and masks) are resolved against,
        instead of the manifest's folder (``-O root=DIR`` on the command
        line; a relative ``root`` is resolved against the current folder).
        Absolute paths are used as they are.
    resize : {"stretch", "pad", "crop"}, default "stretch"
        How images (and masks) are brought to ``size`` x ``size``:
        ``"stretch"`` does not keep the aspect ratio; ``"pad"`` fits the
        image inside and pads it with zeros (defect-free in masks); ``"crop"`` covers the square and keeps its
        centre (see :mod:`mmocc.data.images`).

    Returns
    -------
    ImageListing
        The samples; :meth:`ImageListing.load` decodes them into what
        :func:`load_manifest` returns.

    Raises
    ------
    FileNotFoundError
        For a missing manifest, or a ``root`` that is not a folder (naming it).
    ValueError
        For a manifest that is not UTF-8 (naming the first bad byte) or not
        valid CSV, a column without a name, missing or duplicate columns, an
        unknown view column or a malformed ``views``, a ``mask_<column>``
        column without its view column, a row with the wrong
        number of fields, an empty id or label (when the column exists), a
        duplicate id, a path with a NUL character, or no samples; the message names the manifest and, where
        there is one, the line. Bad images, and masks whose size differs
        from their image's, are found when decoding.
    """
    n_threads = check_image_options(size, mode, on_error, n_jobs, resize)
    columns = view_map(views)
    csv_path = Path(csv_path)
    header, rows = _read_rows(csv_path)
    available, columns = _view_columns(csv_path, header, columns)
    if not rows:
        raise ValueError(f"{csv_path}: the manifest lists no samples")
    samples, masks, contexts, sample_rows, skipped = _samples(
        csv_path, rows, columns, _mask_columns(csv_path, header), on_error, _paths_root(csv_path, root)
    )
    take = np.asarray(sample_rows, dtype=np.intp)

    def column(name: str) -> list[str]:
        return [row[name] for _, row in rows]

    extra = [name for name in available if name not in columns]
    return ImageListing.build(
        samples,
        contexts,
        ids=np.asarray(column("sample_id"), dtype=str)[take],
        labels=labels_from_strings(column("label"))[take] if "label" in header else None,
        groups=labels_from_strings(column("group"))[take] if "group" in header else None,
        metadata={name: np.asarray(column(name), dtype=str)[take] for name in extra},
        masks=masks,
        skipped=skipped,
        origin=f"{csv_path}: ",
        size=size,
        mode=mode,
        cache=cache,
        cache_dir=cache_dir,
        on_error=on_error,
        n_jobs=n_threads,
        resize=resize,
    )


def load_manifest(
    csv_path: str | os.PathLike[str],
    views: ViewsOption = None,
    size: int = 32,
    mode: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    n_jobs: int | None = None,
    root: str | os.PathLike[str] | None = None,
    resize: str = DEFAULT_RESIZE,
) -> MultiViewDataset:
    """Load the images listed in a CSV manifest: :func:`plan_manifest`, decoded into memory.

    Parameters
    ----------
    csv_path, views, size, mode, cache, cache_dir, on_error, n_jobs, root, resize
        See :func:`plan_manifest`, which also describes the manifest's columns.

    Returns
    -------
    MultiViewDataset
        uint8 ``(n, C, size, size)`` image views named after their columns
        (or as ``views`` renames them), ``ids`` from ``sample_id``,
        ``labels`` from ``label`` and ``groups`` from ``group`` when
        present, ``paths`` the image files; ``masks`` and ``mask_paths``
        of the views with a ``mask_<column>`` column, ``(n, size, size)``.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`plan_manifest`; with ``on_error="raise"`` also for a
        missing or unreadable image or mask, one that is not a regular
        file, or a mask whose size differs from its image's (naming the
        line, the view and both sizes).
    """
    return plan_manifest(csv_path, views, size, mode, cache, cache_dir, on_error, n_jobs, root, resize).load()
