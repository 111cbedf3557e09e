"""Score a data source on a Dask cluster: shards, per-worker parts, resume, one merged CSV.

:func:`score` writes what ``mmocc score`` writes, byte for byte, but spreads
the samples over the workers of a Dask cluster: an existing one (a
``distributed.Client``, or a scheduler address) or a ``LocalCluster`` it
starts. It needs the optional dependency ``dask[distributed]``
(``pip install "mmocc[cluster]"``).

The samples are split into contiguous index ranges (shards) whose bounds are
multiples of ``batch_size``, so every chunk a worker scores is the chunk
single-process scoring would score, and the scores are the same bits (unless
``on_error="skip"`` drops samples, which shifts the chunks). Each
worker loads the model and lists the source once per process, checks that it
sees the same model file and the same samples and files as the driver,
scores its shards chunk by chunk and writes each as
``OUT/parts/part-NNNNN.csv`` atomically, ending with an integrity line. The
driver merges the checked parts in order into ``OUT/scores.csv``.
``OUT/shards.json`` records the run, so that a rerun reuses the parts that
pass their check and refuses to mix parts of another run
(:mod:`mmocc.deploy.resume`); ``OUT/run.lock`` keeps two runs out of one
folder (:mod:`mmocc.deploy.lock`).

A worker hands an expected error (a bad image, a model that does not fit the
data) and its warnings back to the driver as values: the driver raises the
error and warns as a local run does, and the worker logs no traceback.

Workers open the model and the data themselves: they must see them at the
same paths as the driver (a shared filesystem; relative paths are resolved
in each worker's working directory, and a worker that lists other files
than the driver is an error).
"""

from __future__ import annotations

import builtins
import csv
import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mmocc.deploy.lock import hold
from mmocc.deploy.resume import FORMAT, listing_sha256, read_part, reconcile, resolved_source, run_id, trailer

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

CLUSTER_MISSING = (
    'scoring on a cluster needs the optional dependency dask.distributed: pip install "mmocc[cluster]"'
)
"""The error message when dask.distributed is not installed."""

SCORES = "scores.csv"
"""The merged output inside the output folder."""

MANIFEST = "shards.json"
"""The record of a run inside the output folder."""

PARTS = "parts"
"""The folder of the per-shard CSV files inside the output folder."""

SHARDS_PER_WORKER = 4
"""Default shards per worker: enough to even out uneven workers, few enough to keep the overhead small."""


def require_distributed() -> None:
    """Raise if dask.distributed is not installed.

    Raises
    ------
    ModuleNotFoundError
        Naming ``pip install "mmocc[cluster]"``.
    """
    if importlib.util.find_spec("distributed") is None:
        raise ModuleNotFoundError(CLUSTER_MISSING, name="distributed")


def _file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_ranges(n_samples: int, batch_size: int, n_shards: int) -> list[tuple[int, int]]:
    """Split ``range(n_samples)`` into contiguous shards whose bounds are multiples of ``batch_size``.

    Parameters
    ----------
    n_samples : int
        The number of samples.
    batch_size : int
        Samples per chunk; every shard but the last holds whole chunks.
    n_shards : int
        The number of shards wanted; there are at most as many as chunks.

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` of each shard, in order, covering every sample once.

    Examples
    --------
    >>> shard_ranges(10, 3, 2)
    [(0, 6), (6, 10)]
    >>> shard_ranges(10, 3, 9)
    [(0, 3), (3, 6), (6, 9), (9, 10)]
    """
    n_chunks = -(-n_samples // batch_size)
    n_shards = min(n_shards, n_chunks)
    bounds = [n_chunks * i // n_shards * batch_size for i in range(n_shards)] + [n_samples]
    return [(bounds[i], min(bounds[i + 1], n_samples)) for i in range(n_shards)]


_SAME_PATHS = "the workers must see the model and the data at the same paths (a shared filesystem)"

_ERRORS: dict[str, type[Exception]] = {
    kind.__name__: kind
    for kind in (FileNotFoundError, PermissionError, ModuleNotFoundError, OSError, TypeError, ValueError)
}
"""The errors a worker hands back to the driver by kind (most specific first), raised there again."""

_SHOWN = 10
"""Parts (and skipped samples) named in one warning."""


@functools.lru_cache(maxsize=1)
def _worker_state(
    model: str, model_sha256: str, device: str, source: str, options: str, paths_sha256: str
) -> tuple[Any, Any]:
    """Load the model and list the source, once per worker process (the last run's are kept).

    Checks that the worker sees the model file and the samples (ids and
    absolute paths) the driver saw.
    """
    from mmocc.data.streaming import plan_source
    from mmocc.deploy.batch import load_detector

    if _file_sha256(Path(model)) != model_sha256:
        raise ValueError(f"a worker sees another model file at {model} than the driver: {_SAME_PATHS}")
    plan = plan_source(source, **json.loads(options))
    if listing_sha256(plan, stat=False) != paths_sha256:
        raise ValueError(
            f"a worker lists other samples or files in {source!r} than the driver: {_SAME_PATHS}; relative "
            "paths are resolved in each worker's working folder"
        )
    return load_detector(model, device), plan


class _HashingWriter:
    """A text sink for :func:`csv.writer` that writes UTF-8 to a binary file and hashes what it writes."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, text: str) -> int:
        """Write ``text`` encoded as UTF-8; return its length in characters."""
        data = text.encode("utf-8")
        self.digest.update(data)
        self.handle.write(data)
        self.size += len(data)
        return len(text)


def _write_part(clf: Any, plan: Any, run: str, start: int, stop: int, batch_size: int, part: str) -> None:
    """Score samples ``start:stop`` and write their rows, header first and integrity line last, atomically."""
    from mmocc.deploy.batch import score_chunks, score_columns
    from mmocc.utils.files import atomic_open

    head = rows = 0
    with atomic_open(part, "wb") as handle:
        sink = _HashingWriter(handle)
        writer = csv.writer(sink)
        for i, (chunk, scores, by_view, parts) in enumerate(
            score_chunks(clf, plan.subset(slice(start, stop)), batch_size, quiet=True)
        ):
            columns = score_columns(chunk, scores, clf.threshold_, by_view, parts)
            if i == 0:
                writer.writerow(list(columns))
                head = sink.size
            writer.writerows(zip(*columns.values(), strict=True))
            rows += len(chunk)
        handle.write(trailer(run, start, stop, head, rows, sink.digest.hexdigest()))


def _score_shard(
    common: tuple[str, str, str, str, str, str], run: str, start: int, stop: int, batch_size: int, part: str
) -> dict[str, Any]:
    """Score one shard into its part; runs on a worker.

    An expected error (a bad file, a model that does not fit the data, a
    full disk) and the warnings are handed back as values, so that the
    worker logs no traceback and the driver reports them as a local run does.
    """
    from mmocc.data.images import SkippedWarning

    result: dict[str, Any] = {"error": None, "warnings": [], "skipped": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _write_part(*_worker_state(*common), run, start, stop, batch_size, part)
        except tuple(_ERRORS.values()) as exc:
            kind = next(name for name, error in _ERRORS.items() if isinstance(exc, error))
            result["error"] = [kind, str(exc) or type(exc).__name__]
    for warning in caught:
        if isinstance(warning.message, SkippedWarning):
            result["skipped"].extend(warning.message.lines)
        else:
            result["warnings"].append([warning.category.__name__, str(warning.message)])
    return result


@dataclass(frozen=True)
class _Job:
    """What the driver knows before it shards: the model, the source as given and listed, the identity."""

    model: Path
    source: str
    options_json: str
    plan: Any
    identity: dict[str, Any]

    @property
    def exact(self) -> bool:
        """Whether every shard keeps all its samples (not under ``on_error="skip"``)."""
        return self.plan.options.get("on_error", "raise") != "skip"

    def common(self, device: str) -> tuple[str, str, str, str, str, str]:
        """Return the arguments every shard's worker task shares (see :func:`_worker_state`)."""
        paths = listing_sha256(self.plan, stat=False)
        return str(self.model), self.identity["model_sha256"], device, self.source, self.options_json, paths


def _prepare(
    model: str | os.PathLike[str], source: str, data_options: Mapping[str, Any] | None, batch_size: int
) -> _Job:
    """Load the model's view of the source and describe the run: everything the record holds but shards."""
    from mmocc.data.sources import parse_source
    from mmocc.data.streaming import plan_source
    from mmocc.deploy.batch import load_detector, model_data_options

    model_path = Path(model).resolve()
    parsed = parse_source(source)
    options = model_data_options(load_detector(model_path, "cpu"), parsed, dict(data_options or {}))
    plan = plan_source(parsed, **options)
    options_json = json.dumps(options, sort_keys=True, default=str)  # a path option becomes a string
    identity = {
        "format": FORMAT,
        "source": source,
        "source_resolved": resolved_source(parsed),
        "data_options": json.loads(options_json),
        "model_sha256": _file_sha256(model_path),
        "n_samples": len(plan),
        "listing_sha256": listing_sha256(plan, stat=True),
        "batch_size": batch_size,
    }
    return _Job(model_path, source, options_json, plan, identity)


def _part(folder: Path, index: int) -> Path:
    """Return the part file of shard ``index``."""
    return folder / PARTS / f"part-{index:05d}.csv"


def _to_score(folder: Path, run: dict[str, Any], exact: bool) -> list[int]:
    """Return the shards whose part is missing or fails its check; warn once naming the failing parts."""
    todo, failing = [], []
    run_name = run_id(run)
    for index, (start, stop) in enumerate(run["shards"]):
        part = _part(folder, index)
        if not os.path.lexists(part):
            todo.append(index)
            continue
        found = read_part(part, run_name, start, stop, exact)
        if isinstance(found, str):
            todo.append(index)
            failing.append(f"{part.name} {found}")
    if failing:
        more = f"; ... ({len(failing)} in all)" if len(failing) > _SHOWN else ""
        warnings.warn(
            f"{len(failing)} part(s) in {folder / PARTS} fail their check and are scored again: "
            f"{'; '.join(failing[:_SHOWN])}{more}",
            UserWarning,
            stacklevel=3,
        )
    return todo


def _merge(folder: Path, run: dict[str, Any], exact: bool) -> Path:
    """Concatenate the checked parts in order into ``scores.csv`` atomically, with the first header only."""
    from mmocc.utils.files import atomic_open

    header: bytes | None = None
    run_name, out = run_id(run), folder / SCORES
    with atomic_open(out, "wb") as merged:
        for index, (start, stop) in enumerate(run["shards"]):
            part = _part(folder, index)
            found = read_part(part, run_name, start, stop, exact)
            if isinstance(found, str):
                raise ValueError(f"{part} {found}, after this run wrote it; run again to score it again")
            body, head = found
            if header is None:
                header = body[:head]
                merged.write(header)
            elif body[:head] != header:
                raise ValueError(
                    f"{part}: its header differs from {_part(folder, 0).name}'s; "
                    "start over (resume=False, --restart)"
                )
            merged.write(body[head:])
    return out


def local_cluster(n_workers: int | None = None, *, worker_logs: bool = False) -> LocalCluster:
    """Start the Dask LocalCluster that :func:`score` starts when given no cluster.

    Its workers are processes with one thread each (torch uses one thread
    per worker). Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_``
    set, which turns off glibc's adaptive mmap threshold: every large
    temporary array is then mapped and unmapped again, and scoring ran 2-3x
    slower (measured); this cluster leaves the variable unset.

    Parameters
    ----------
    n_workers : int, optional
        The number of workers; default one per CPU core.
    worker_logs : bool, default False
        Show the cluster's warnings and errors (a worker's traceback after
        Ctrl-C, a nanny killing a worker) on standard error; by default
        only critical ones.

    Returns
    -------
    distributed.LocalCluster
        The started cluster; close it (or use it as a context manager).
    """
    require_distributed()
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.WARNING if worker_logs else logging.CRITICAL,
            preload=[] if worker_logs else [__name__],  # runs dask_setup below in each worker
        )


def dask_setup(worker: Any) -> None:
    """Make a local cluster's worker ignore Ctrl-C: run by Dask in each worker as it starts (its preload).

    Ctrl-C on a terminal signals every process of the foreground group, so
    each worker would print a ``KeyboardInterrupt`` traceback; the driver
    alone handles it, and stops the workers as it closes the cluster.

    Parameters
    ----------
    worker : distributed.Worker
        The worker starting (unused).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Connection:
    """A client of the cluster to use, connected (or a local cluster started) when first needed.

    A rerun whose shards are all scored already needs no cluster at all.
    """

    def __init__(
        self, client: Client | None, scheduler: str | None, n_workers: int | None, worker_logs: bool
    ) -> None:
        self._given, self._scheduler, self._n_workers, self._logs = client, scheduler, n_workers, worker_logs
        self._stack = ExitStack()

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @functools.cached_property
    def client(self) -> Client:
        """The client: the one given, one of the scheduler, or one of a LocalCluster started here."""
        from distributed import Client

        if self._given is not None:
            return self._given
        if self._scheduler is not None:
            return self._stack.enter_context(Client(self._scheduler))
        cluster = self._stack.enter_context(local_cluster(self._n_workers, worker_logs=self._logs))
        return self._stack.enter_context(Client(cluster))


def _raise_worker_error(result: Mapping[str, Any]) -> None:
    """Raise the error a worker handed back, as its kind."""
    if result["error"] is not None:
        kind, message = result["error"]
        raise _ERRORS[kind](message)


def _run_shards(
    client: Client, job: _Job, folder: Path, run: dict[str, Any], todo: list[int], device: str, progress: bool
) -> list[dict[str, Any]]:
    """Score the shards ``todo`` on the cluster; return the workers' results, raising the first error."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    common, run_name, batch = job.common(device), run_id(run), run["batch_size"]
    futures = []
    for i in todo:
        start, stop = run["shards"][i]
        part = str(_part(folder, i))
        futures.append(client.submit(_score_shard, common, run_name, start, stop, batch, part, pure=False))
    results = []
    with tqdm(total=len(futures), desc="shards", unit="shard", disable=not progress) as bar:
        try:
            for future in as_completed(futures):
                results.append(future.result())
                _raise_worker_error(results[-1])
                bar.update()
        finally:
            client.cancel(futures)
    return results


def _report(job: _Job, results: list[dict[str, Any]]) -> None:
    """Warn once what the workers warned: their other warnings, then every skipped sample in one warning."""
    from mmocc.data.images import warn_skipped

    categories = {name: kind for name, kind in vars(builtins).items() if isinstance(kind, type)}
    for name, text in dict.fromkeys((name, text) for result in results for name, text in result["warnings"]):
        kind = categories.get(name)
        category = kind if kind is not None and issubclass(kind, Warning) else UserWarning
        warnings.warn(text, category, stacklevel=3)
    warn_skipped([*job.plan.skipped, *(line for result in results for line in result["skipped"])], _SHOWN)


def _shards(job: _Job, folder: Path, n_shards: int | None, connection: _Connection) -> list[list[int]]:
    """Return the shards of the run: the recorded ones when the record matches this run, else new ones."""
    n_samples, batch_size = job.identity["n_samples"], job.identity["batch_size"]
    wanted = None if n_shards is None else shard_ranges(n_samples, batch_size, n_shards)
    shards = reconcile(folder / MANIFEST, job.identity, None if wanted is None else len(wanted))
    if shards is None:
        n_workers = len(connection.client.scheduler_info()["workers"])
        shards = wanted or shard_ranges(n_samples, batch_size, SHARDS_PER_WORKER * max(1, n_workers))
    return [list(bounds) for bounds in shards]


def score(
    model: str | os.PathLike[str],
    source: str,
    out: str | os.PathLike[str],
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    n_shards: int | None = None,
    batch_size: int = 4096,
    data_options: Mapping[str, Any] | None = None,
    device: str = "auto",
    resume: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    worker_logs: bool = False,
) -> Path:
    """Score every sample of a source with a saved model on a Dask cluster.

    The result is ``out/scores.csv``, byte for byte what ``mmocc score``
    writes for the same model, data and ``batch_size``: ``sample_id``,
    ``label`` (labelled data), ``score``, ``is_anomaly``, ``score_<view>``
    and ``path_<view>`` columns. The parts and the record of the run stay
    beside it, so that an interrupted run resumes where it stopped: a part
    is reused only when it passes its check (see :mod:`mmocc.deploy.resume`),
    and one that fails is scored again, with a warning naming it. The lock
    ``out/run.lock`` keeps a second run out of the folder meanwhile
    (:mod:`mmocc.deploy.lock`).

    Parameters
    ----------
    model : str or path-like
        A model file written by :meth:`mmocc.MultimodalOCC.save`.
    source : str
        The data source (a SRC string, see :func:`mmocc.data.sources.parse_source`).
    out : str or path-like
        The output folder: ``scores.csv``, ``parts/``, ``shards.json`` and,
        during the run, ``run.lock``.
    client : distributed.Client, optional
        A client of the cluster to use (left open).
    scheduler : str, optional
        The address of a running scheduler, e.g. ``tcp://host:8786``, when
        no ``client`` is given.
    n_workers : int, optional
        Workers of the ``LocalCluster`` started when neither ``client`` nor
        ``scheduler`` is given (one thread each); default one per CPU core.
    n_shards : int, optional
        The number of shards; default 4 per worker, or the recorded shards
        when resuming. There are at most as many shards as chunks of
        ``batch_size`` samples.
    batch_size : int, default 4096
        Samples scored per chunk; bounds each worker's memory.
    data_options : mapping, optional
        Loader options (``cache``, ...); the image size and colour mode are
        read from the model, as ``mmocc score`` does.
    device : str, default "auto"
        The torch device of the workers (``auto``: CUDA when a worker has it).
    resume : bool, default True
        Keep the parts of an earlier run of the same model, data, options
        and chunk size in ``out``; False removes them and starts over.
    progress : bool, default False
        Show a progress bar of finished shards.
    log : callable, optional
        Called with one line when the run reuses an earlier run's parts
        (saying how many, or that nothing needed scoring again).
    worker_logs : bool, default False
        Let a local cluster show its warnings and errors; see :func:`local_cluster`.

    Returns
    -------
    pathlib.Path
        ``out/scores.csv``.

    Raises
    ------
    ModuleNotFoundError
        If dask.distributed is not installed; the message names
        ``pip install "mmocc[cluster]"``.
    ValueError
        If ``n_workers`` is given with ``client`` or ``scheduler``, another
        run holds ``out``, ``out`` records another run or shards that do not
        cover the samples (and ``resume`` is True), a worker sees another
        model file or other samples than this process, or the model does
        not fit the data.
    FileNotFoundError
        If the model file or the data source does not exist.
    """
    require_distributed()
    from mmocc.utils.files import write_json

    if n_workers is not None and (client is not None or scheduler is not None):
        raise ValueError("n_workers sizes the local cluster; it does not apply with a client or scheduler")
    if batch_size < 1 or (n_shards is not None and n_shards < 1):
        raise ValueError(f"batch_size and n_shards must be at least 1, not {batch_size} and {n_shards}")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: the output of cluster scoring is a folder, and this is not one")
    job = _prepare(model, source, data_options, batch_size)
    with hold(folder), _Connection(client, scheduler, n_workers, worker_logs) as connection:
        if not resume:
            shutil.rmtree(folder / PARTS, ignore_errors=True)
            (folder / MANIFEST).unlink(missing_ok=True)
        run = {**job.identity, "shards": _shards(job, folder, n_shards, connection)}
        write_json(folder / MANIFEST, run)
        todo = _to_score(folder, run, job.exact)
        reused = len(run["shards"]) - len(todo)
        if log is not None and reused:
            log(
                f"all {reused} shards in {folder} were scored by an earlier run and pass their checks: "
                "nothing scored again"
                if not todo
                else f"resuming: {reused} of {len(run['shards'])} shards were scored by an earlier run; "
                f"scoring the other {len(todo)}"
            )
        results = _run_shards(connection.client, job, folder, run, todo, device, progress) if todo else []
        _report(job, results)
        return _merge(folder, run, job.exact)
