"""What makes a resumed cluster run safe: the run's record, checked, and parts that check themselves.

``OUT/shards.json`` (:func:`reconcile`) records everything a part's rows
depend on: the model file's SHA-256, the data source as given and resolved
to absolute paths, the loader options, a fingerprint of the listing (ids,
absolute paths, sizes and modification times of every file), the chunk
size and the shards. A rerun must match it field by field, and its shards
must cover ``[0, n_samples)`` exactly, in order, as integers on chunk
bounds; anything else is one error naming the record and what is wrong.

Each part ends with one integrity line (:func:`trailer`) written in the same
atomic write as its rows: the run it belongs to (a digest of the record's
identity, :func:`run_id`), its shard's bounds, its header's length, its row
count and the SHA-256 of everything before it. :func:`part_problem` checks
a part against the record before it is reused, so a part cut short, edited,
emptied, moved to another shard's name or left by another run is scored
again, never merged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmocc.data.sources import Source
    from mmocc.data.streaming import SourcePlan

FORMAT = 2
"""Version of the ``shards.json`` layout (1: no resolved source, listing fingerprint or part trailers)."""

_HINTS = {
    "format": "it was written by another mmocc version",
    "model_sha256": "another model file",
    "source_resolved": "another data source, or a relative one from another folder",
    "listing_sha256": "the data changed since: a file was added, removed, renamed or rewritten",
    "n_samples": "the data changed since",
    "data_options": "other loader options",
    "batch_size": "another --batch-size",
}
"""Why a field of the record may differ, for the error."""

_TRAILER = re.compile(
    rb"#mmocc-part run=(?P<run>[0-9a-f]{16}) start=(?P<start>\d{1,15}) stop=(?P<stop>\d{1,15}) "
    rb"head=(?P<head>\d{1,15}) rows=(?P<rows>\d{1,15}) sha256=(?P<sha256>[0-9a-f]{64})\n"
)
"""The integrity line that ends every part (see :func:`trailer`)."""


def _absolute(value: Any) -> Any:
    """Return ``value`` with every path in it resolved to an absolute one (JSON-ready)."""
    if isinstance(value, os.PathLike):
        return str(Path(value).resolve())
    if isinstance(value, Mapping):
        return {str(key): _absolute(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_absolute(item) for item in value]
    return value


def resolved_source(source: Source) -> dict[str, Any]:
    """Return a data source with its file or folders resolved: what a relative SRC meant, here.

    Parameters
    ----------
    source : mmocc.data.sources.Source
        The parsed SRC.

    Returns
    -------
    dict
        ``kind``, the absolute ``path`` (None for kinds without one) and the
        SRC's own ``options`` with their paths absolute (``pairs:``' folders).
    """
    return {"kind": source.kind, "path": _absolute(source.path), "options": _absolute(source.options)}


def _status(path: str) -> str:
    """Return a file's size and modification time for a fingerprint; a missing or unreadable one says so."""
    try:
        info = os.stat(path)
    except OSError as exc:  # decoding reports it (and on_error="skip" drops its sample)
        return f"\0{type(exc).__name__}"
    return f"\0{info.st_size}\0{info.st_mtime_ns}"


def listing_sha256(plan: SourcePlan, *, stat: bool) -> str:
    """Return a fingerprint of a source's samples: ids and absolute paths, and their files' status.

    Parameters
    ----------
    plan : mmocc.data.streaming.SourcePlan
        The listed source.
    stat : bool
        Add each file's size and modification time (one ``stat`` per file;
        a file that cannot be read is marked so, for decoding to report);
        without, ids and paths only (what each worker checks it sees). A
        source without files (``synthetic``, ``mfeat``) is fingerprinted by
        its values instead.

    Returns
    -------
    str
        A SHA-256 hex digest.
    """
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, plan.ids.tolist())).encode("utf-8", "surrogateescape") + b"\0")
    for view, column in sorted(plan.paths.items()):
        digest.update(f"{view}\0".encode("utf-8", "surrogateescape"))
        for path in column.tolist():
            line = os.path.abspath(path)
            if stat:
                line += _status(path)
            digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    if not plan.paths and plan.dataset is not None:
        for view, array in plan.dataset.views.items():
            digest.update(f"{view}\0{array.dtype}{array.shape}\0".encode() + array.tobytes())
    return digest.hexdigest()


def run_id(record: Mapping[str, Any]) -> str:
    """Return the digest of a record's identity (everything but the shards): what a part belongs to.

    Parameters
    ----------
    record : mapping
        The run's record.

    Returns
    -------
    str
        16 hex digits.
    """
    identity = {key: value for key, value in record.items() if key != "shards"}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _short(value: Any, limit: int = 60) -> str:
    """Return ``value`` as JSON for an error message, its middle cut out beyond ``limit`` characters."""
    text = json.dumps(value, default=str)
    keep = (limit - 3) // 2
    return text if len(text) <= limit else f"{text[:keep]}...{text[-keep:]}"


def _shown(key: str, value: Any) -> str:
    """Return a field of the record for an error message: a resolved source as KIND:PATH, else short JSON."""
    if key == "source_resolved" and isinstance(value, dict) and not value.get("options"):
        return f"{value.get('kind')}:{value.get('path')}"
    return _short(value, 120)


def _shard_problem(index: int, bounds: Any, start: int, n_samples: int, batch_size: int) -> str | None:
    """Say what is wrong with shard ``index`` of a record, which should start at ``start`` (None: nothing)."""
    if not isinstance(bounds, list) or len(bounds) != 2:
        return f"shard {index} is {_short(bounds)}, not two bounds [start, stop]"
    if not all(type(bound) is int for bound in bounds):  # bool and float are not bounds
        return f"shard {index} is {_short(bounds)}: its bounds must be integers"
    first, stop = bounds
    if first != start:
        what = "a gap" if first > start else "an overlap"
        return f"shard {index} starts at {first}, but the shards before end at {start} ({what})"
    if not first < stop <= n_samples:
        return f"shard {index} is [{first}, {stop}]: it must end after it starts, at {n_samples} at most"
    if stop < n_samples and stop % batch_size:
        return f"shard {index} ends at {stop}, inside a chunk of {batch_size}; shards end on chunk bounds"
    return None


def check_shards(path: Path, shards: Any, n_samples: int, batch_size: int) -> list[tuple[int, int]]:
    """Return a record's shards once they cover ``[0, n_samples)`` exactly, in order, on chunk bounds.

    Parameters
    ----------
    path : pathlib.Path
        The record, for the error.
    shards : Any
        Its ``shards`` entry, as read.
    n_samples : int
        The number of samples of the source.
    batch_size : int
        The chunk size; every shard but the last ends on a multiple of it.

    Returns
    -------
    list of (int, int)
        The shards.

    Raises
    ------
    ValueError
        One line naming ``path`` and the first shard that is not a pair of
        integers, leaves a gap, overlaps, is empty or out of range, or ends
        inside a chunk.

    Examples
    --------
    >>> check_shards(Path("shards.json"), [[0, 4], [4, 10]], 10, 4)
    [(0, 4), (4, 10)]
    >>> check_shards(Path("shards.json"), [[0, 4], ["4", 10]], 10, 4)
    Traceback (most recent call last):
    ...
    ValueError: shards.json: shard 1 is ["4", 10]: its bounds must be integers; remove the record ...
    """
    restart = "remove the record (or start over: resume=False, --restart on the command line)"
    if not isinstance(shards, list) or not shards:
        raise ValueError(
            f"{path}: its shards are {_short(shards)}, not a list covering {n_samples} samples; {restart}"
        )
    start = 0
    for index, bounds in enumerate(shards):
        problem = _shard_problem(index, bounds, start, n_samples, batch_size)
        if problem is not None:
            raise ValueError(f"{path}: {problem}; {restart}")
        start = bounds[1]
    if start != n_samples:
        raise ValueError(f"{path}: its shards cover samples 0-{start - 1}, not all {n_samples}; {restart}")
    return [(first, stop) for first, stop in shards]


def _differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Describe each field of the identity in which ``recorded`` differs from ``wanted``, in that order."""
    lines = []
    for key in [*wanted, *(key for key in recorded if key not in wanted)]:
        if key == "shards" or (key in recorded and recorded[key] == wanted.get(key)):
            continue
        if key not in wanted:
            lines.append(f"{key} is not a field of the record")
            continue
        shown = f": {_shown(key, recorded.get(key))} recorded, now {_shown(key, wanted[key])}"
        values = "" if key.endswith("sha256") else shown
        hint = f" ({_HINTS[key]})" if key in _HINTS else ""
        lines.append(f"{key} differs{values}{hint}")
    return lines


def reconcile(path: Path, identity: Mapping[str, Any], n_wanted: int | None) -> list[tuple[int, int]] | None:
    """Return the shards ``path`` records when it records this run; None when there is no record.

    Parameters
    ----------
    path : pathlib.Path
        ``OUT/shards.json``; it may not exist.
    identity : mapping
        The record of the run asked for, without its shards: ``n_samples``
        and ``batch_size`` among its fields.
    n_wanted : int or None
        The number of shards asked for; None takes the recorded shards,
        however many.

    Returns
    -------
    list of (int, int) or None
        The recorded shards, checked (see :func:`check_shards`).

    Raises
    ------
    ValueError
        One line naming ``path``: not a record, a record of another run
        (each differing field, both values and a hint), shards that do not
        cover the samples, or another number of shards than asked for.
    """
    if not os.path.lexists(path):
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable shards record ({exc}); remove the output folder") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: not a shards record (a JSON {type(recorded).__name__}); remove it")
    restart = "Give another output folder, or start over (resume=False, --restart on the command line)"
    differ = _differences(recorded, identity)
    if differ:
        raise ValueError(f"{path} records another run: {'; '.join(differ)}. {restart}")
    shards = check_shards(path, recorded.get("shards"), identity["n_samples"], identity["batch_size"])
    if n_wanted is not None and len(shards) != n_wanted:
        raise ValueError(f"{path} records another run: {len(shards)} shards, {n_wanted} asked for. {restart}")
    return shards


def trailer(run: str, start: int, stop: int, head: int, rows: int, sha256: str) -> bytes:
    """Return the integrity line that ends a part.

    Parameters
    ----------
    run : str
        The run it belongs to (:func:`run_id`).
    start, stop : int
        Its shard's bounds.
    head : int
        The length in bytes of the part's header row.
    rows : int
        The number of rows after the header.
    sha256 : str
        The SHA-256 hex digest of the part before this line (header and rows).

    Returns
    -------
    bytes
        ``#mmocc-part run=... start=... stop=... head=... rows=... sha256=...`` and a newline.

    Examples
    --------
    >>> trailer("0" * 16, 0, 4, 20, 4, "f" * 64)[:60]
    b'#mmocc-part run=0000000000000000 start=0 stop=4 head=20 rows'
    """
    line = f"#mmocc-part run={run} start={start} stop={stop} head={head} rows={rows} sha256={sha256}\n"
    return line.encode()


def _count_rows(rows: bytes) -> int | None:
    """Return the number of CSV records in ``rows``; None when they are not CSV text."""
    try:
        return sum(1 for _ in csv.reader(io.StringIO(rows.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None


def read_part(path: Path, run: str, start: int, stop: int, exact: bool) -> tuple[bytes, int] | str:
    """Check a part against its shard; return its body and header length, or what is wrong with it.

    Parameters
    ----------
    path : pathlib.Path
        The part file.
    run : str
        The run it must belong to (:func:`run_id`).
    start, stop : int
        The shard it must hold.
    exact : bool
        It must hold ``stop - start`` rows; otherwise (``on_error="skip"``
        drops bad samples) at most that many.

    Returns
    -------
    (bytes, int) or str
        The part without its integrity line, and the length of its header;
        or why it cannot be used, to follow its name ("is empty", "was
        written by another run", ...).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"is unreadable ({exc.strerror or exc})"
    if not data:
        return "is empty"
    cut = data.rfind(b"#mmocc-part ", 0, len(data))
    found = _TRAILER.fullmatch(data, cut) if cut >= 0 else None
    if found is None:
        return "has no integrity line at its end: cut short, or written by an older mmocc"
    body, fields = data[:cut], {key: found[key].decode() for key in ("run", "start", "stop", "head", "rows")}
    if hashlib.sha256(body).hexdigest() != found["sha256"].decode():
        return "does not match its checksum: edited or damaged"
    if fields["run"] != run:
        return "was written by another run"
    if (int(fields["start"]), int(fields["stop"])) != (start, stop):
        return f"holds samples {fields['start']}-{int(fields['stop']) - 1}, not this shard's"
    head, rows = int(fields["head"]), int(fields["rows"])
    if _count_rows(body[head:]) != rows or not 0 < head <= len(body):
        return f"holds other rows than the {rows} its integrity line records"
    if rows > stop - start or (exact and rows != stop - start):
        return f"holds {rows} rows for {stop - start} samples"
    return body, head
