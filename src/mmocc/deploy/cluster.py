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
sees the same model file and the same samples as the driver, scores its
shards chunk by chunk and writes each as ``OUT/parts/part-NNNNN.csv``
atomically. The driver merges the parts in order into ``OUT/scores.csv``.
``OUT/shards.json`` records the run (source, loader options, model file
SHA-256, sample count and ids digest, chunk size, shards), so that a rerun
skips the shards whose part exists and refuses to mix parts of another run.

Workers open the model and the data themselves: they must see them at the
same paths as the driver (a shared filesystem; relative paths are resolved
in each worker's working directory).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

_FORMAT = 1
"""Version of the ``shards.json`` layout."""


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


def _ids_sha256(ids: Any) -> str:
    """Return the SHA-256 hex digest of the sample ids in order."""
    return hashlib.sha256("\n".join(map(str, ids)).encode("utf-8")).hexdigest()


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


@functools.lru_cache(maxsize=1)
def _worker_state(
    model: str, model_sha256: str, device: str, source: str, options: str, ids_sha256: str
) -> tuple[Any, Any]:
    """Load the model and list the source, once per worker process (the last run's are kept).

    Checks that the worker sees the model file and the samples the driver saw.
    """
    import mmocc
    from mmocc.data.streaming import plan_source

    if _file_sha256(Path(model)) != model_sha256:
        raise ValueError(f"a worker sees another model file at {model} than the driver: {_SAME_PATHS}")
    plan = plan_source(source, **json.loads(options))
    if _ids_sha256(plan.ids) != ids_sha256:
        raise ValueError(
            f"a worker lists other samples in {source!r} than the driver: {_SAME_PATHS}; relative paths "
            "are resolved in each worker's working folder"
        )
    return mmocc.load(model, device=device), plan


def _score_shard(
    model: str,
    model_sha256: str,
    device: str,
    source: str,
    options: str,
    ids_sha256: str,
    start: int,
    stop: int,
    batch_size: int,
    part: str,
) -> int:
    """Score samples ``start:stop`` and write their rows, with the header, atomically to ``part``.

    Runs on a worker; returns the number of rows written.
    """
    from mmocc.deploy.batch import score_chunks, score_columns
    from mmocc.utils.files import atomic_open

    clf, plan = _worker_state(model, model_sha256, device, source, options, ids_sha256)
    with atomic_open(part, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        shard = plan.subset(slice(start, stop))
        for i, (chunk, scores, by_view) in enumerate(score_chunks(clf, shard, batch_size, quiet=True)):
            columns = score_columns(chunk, scores, clf.threshold_, by_view)
            if i == 0:
                writer.writerow(list(columns))
            writer.writerows(zip(*columns.values(), strict=True))
    return stop - start


def _check_manifest(path: Path, wanted: Mapping[str, Any], n_shards: int | None) -> dict[str, Any]:
    """Return the run to do: the recorded one when ``path`` describes the same run, else ``wanted``.

    Raises a ValueError naming what differs when ``path`` records another run.
    """
    if not path.is_file():
        return dict(wanted)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable shards record ({exc}); remove the output folder") from None
    if not isinstance(recorded, dict):
        recorded = {}
    differ = [key for key in wanted if key != "shards" and recorded.get(key) != wanted[key]]
    shards = recorded.get("shards")
    if not isinstance(shards, list) or (n_shards is not None and len(shards) != len(wanted["shards"])):
        differ.append("shards")
    if differ:
        raise ValueError(
            f"{path} records another run ({', '.join(differ)} differ{'s' if len(differ) == 1 else ''}); "
            "give another output folder, or start over (resume=False, --restart on the command line)"
        )
    return dict(recorded)


def _merge(parts: list[Path], out: Path) -> None:
    """Concatenate the parts in order into ``out`` atomically, keeping the first header only."""
    from mmocc.utils.files import atomic_open

    header: bytes | None = None
    with atomic_open(out, "wb") as merged:
        for part in parts:
            with open(part, "rb") as handle:
                first = handle.readline()
                if header is None:
                    header = first
                    merged.write(first)
                elif first != header:
                    raise ValueError(
                        f"{part}: its header differs from {parts[0].name}'s; "
                        "start over (resume=False, --restart)"
                    )
                shutil.copyfileobj(handle, merged)


def local_cluster(n_workers: int | None = None) -> LocalCluster:
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
        )


@contextmanager
def _connect(client: Client | None, scheduler: str | None, n_workers: int | None) -> Iterator[Client]:
    """Yield ``client``, or a client of ``scheduler``, or of a LocalCluster started (and stopped) here."""
    require_distributed()
    from distributed import Client

    if client is not None:
        yield client
    elif scheduler is not None:
        with Client(scheduler) as connected:
            yield connected
    else:
        with local_cluster(n_workers) as cluster, Client(cluster) as connected:
            yield connected


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
) -> Path:
    """Score every sample of a source with a saved model on a Dask cluster.

    The result is ``out/scores.csv``, byte for byte what ``mmocc score``
    writes for the same model, data and ``batch_size``: ``sample_id``,
    ``label`` (labelled data), ``score``, ``is_anomaly``, ``score_<view>``
    and ``path_<view>`` columns. The parts and the record of the run stay
    beside it, so that an interrupted run resumes where it stopped.

    Parameters
    ----------
    model : str or path-like
        A model file written by :meth:`mmocc.MultimodalOCC.save`.
    source : str
        The data source (a SRC string, see :func:`mmocc.data.sources.parse_source`).
    out : str or path-like
        The output folder: ``scores.csv``, ``parts/`` and ``shards.json``.
    client : distributed.Client, optional
        A client of the cluster to use (left open).
    scheduler : str, optional
        The address of a running scheduler, e.g. ``tcp://host:8786``, when
        no ``client`` is given.
    n_workers : int, optional
        Workers of the ``LocalCluster`` started when neither ``client`` nor
        ``scheduler`` is given (one thread each); default one per CPU core.
    n_shards : int, optional
        The number of shards; default 4 per worker. There are at most as many
        shards as chunks of ``batch_size`` samples.
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
        If ``n_workers`` is given with ``client`` or ``scheduler``, ``out``
        records another run (and ``resume`` is True), a worker
        sees another model file or other samples than this process, or the
        model does not fit the data.
    FileNotFoundError
        If the model file or the data source does not exist.
    """
    require_distributed()
    from distributed import as_completed
    from tqdm.auto import tqdm

    import mmocc
    from mmocc.data.sources import parse_source
    from mmocc.data.streaming import plan_source
    from mmocc.deploy.batch import model_data_options
    from mmocc.utils.files import write_json

    if n_workers is not None and (client is not None or scheduler is not None):
        raise ValueError("n_workers sizes the local cluster; it does not apply with a client or scheduler")
    if batch_size < 1 or (n_shards is not None and n_shards < 1):
        raise ValueError(f"batch_size and n_shards must be at least 1, not {batch_size} and {n_shards}")
    model_path, folder = Path(model).resolve(), Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: the output of cluster scoring is a folder, and this is not one")
    parsed = parse_source(source)
    options = model_data_options(mmocc.load(model_path, device="cpu"), parsed, dict(data_options or {}))
    plan = plan_source(parsed, **options)
    options_json = json.dumps(options, sort_keys=True, default=str)  # a path option becomes a string
    if not resume:
        shutil.rmtree(folder / PARTS, ignore_errors=True)
        (folder / MANIFEST).unlink(missing_ok=True)
    with _connect(client, scheduler, n_workers) as connected:
        wanted_shards = n_shards or SHARDS_PER_WORKER * max(1, len(connected.scheduler_info()["workers"]))
        wanted = {
            "format": _FORMAT,
            "source": source,
            "data_options": json.loads(options_json),
            "model_sha256": _file_sha256(model_path),
            "n_samples": len(plan),
            "ids_sha256": _ids_sha256(plan.ids),
            "batch_size": batch_size,
            "shards": [list(bounds) for bounds in shard_ranges(len(plan), batch_size, wanted_shards)],
        }
        run = _check_manifest(folder / MANIFEST, wanted, n_shards)
        write_json(folder / MANIFEST, run)
        parts = [folder / PARTS / f"part-{i:05d}.csv" for i in range(len(run["shards"]))]
        common = (str(model_path), run["model_sha256"], device, source, options_json)
        futures = [
            connected.submit(
                _score_shard, *common, run["ids_sha256"], start, stop, batch_size, str(part), pure=False
            )
            for (start, stop), part in zip(run["shards"], parts, strict=True)
            if not part.is_file()
        ]
        with tqdm(total=len(futures), desc="shards", unit="shard", disable=not progress) as bar:
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update()
            finally:
                connected.cancel(futures)
    _merge(parts, folder / SCORES)
    return folder / SCORES
