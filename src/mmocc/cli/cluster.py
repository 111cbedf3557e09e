"""The ``--engine dask`` options of ``mmocc score`` and the command body that scores on a cluster.

Only :mod:`click` and the standard library are imported here; dask and torch
are imported by :func:`score_on_cluster`, when the engine is dask.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from mmocc.cli.options import STDOUT, check_out, debugging, note, parse_data_options

ENGINES = ("local", "dask")
"""The values of ``--engine``."""


def _check_score_out(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """Check ``--out``: a CSV file (or ``-``) for the local engine, a folder for dask (option callback)."""
    if ctx.params.get("engine") != "dask":
        return check_out(ctx, param, value, stdout=True)
    if value == STDOUT or (value.exists() and not value.is_dir()) or value.is_symlink():
        raise click.BadParameter(
            f"with --engine dask, --out is a folder to write scores.csv into, not {value}"
        )
    return value


def _dask_only(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an option of the dask engine given with ``--engine local`` (option callback)."""
    if value and ctx.params.get("engine") != "dask":
        raise click.BadParameter("applies only with --engine dask")
    return value


score_out_option = click.option(
    "--out",
    required=True,
    type=click.Path(allow_dash=True, path_type=Path),
    callback=_check_score_out,
    help="CSV file to write; '-' writes to standard output. With --engine dask: a folder, where "
    "scores.csv, the parts and shards.json (the record that lets a rerun resume) are written.",
)
"""The ``--out`` option of ``mmocc score``: a file, or a folder with ``--engine dask``."""


def cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--engine``, ``--scheduler``, ``--workers``, ``--shards`` and ``--restart`` to a command.

    Parameters
    ----------
    func : callable
        The command function.

    Returns
    -------
    callable
        The function with the options.
    """
    options = [
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default="local",
            show_default=True,
            is_eager=True,
            help="local: this process. dask: shard SRC over the workers of a Dask cluster (needs "
            'pip install "mmocc[cluster]"; the workers must see MODEL and SRC at the same paths).',
        ),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            callback=_dask_only,
            help="Dask scheduler to use, e.g. tcp://host:8786.  [default: start a local cluster]",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            callback=_dask_only,
            help="Workers of the local cluster, one thread each.  [default: one per CPU core]",
        ),
        click.option(
            "--shards",
            type=click.IntRange(min=1),
            callback=_dask_only,
            help="Shards of SRC, at most one per --batch-size chunk.  [default: 4 per worker]",
        ),
        click.option(
            "--restart",
            is_flag=True,
            callback=_dask_only,
            help="Discard the parts of an earlier run in the --out folder instead of resuming.",
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def score_on_cluster(
    model: Path,
    src: str,
    out: Path,
    data_options: Sequence[str],
    batch_size: int,
    quiet: bool,
    device: str,
    scheduler: str | None,
    workers: int | None,
    shards: int | None,
    restart: bool,
) -> None:
    """Run ``mmocc score --engine dask``: score on a Dask cluster and merge into ``out/scores.csv``.

    Parameters
    ----------
    model : pathlib.Path
        The model file.
    src : str
        The data source.
    out : pathlib.Path
        The output folder.
    data_options : sequence of str
        The ``--data-option`` items.
    batch_size : int
        Samples per chunk.
    quiet : bool
        No progress bar or message.
    device : str
        The workers' torch device.
    scheduler : str or None
        The scheduler's address; None starts a local cluster.
    workers : int or None
        Workers of the local cluster.
    shards : int or None
        The number of shards.
    restart : bool
        Discard an earlier run's parts instead of resuming.

    Raises
    ------
    click.UsageError
        For ``--workers`` with ``--scheduler``.
    """
    if scheduler and workers:
        raise click.UsageError("--workers sizes the local cluster; it does not apply with --scheduler")
    from mmocc.deploy import cluster as distributed

    scores = distributed.score(
        model,
        src,
        out,
        scheduler=scheduler,
        n_workers=workers,
        n_shards=shards,
        batch_size=batch_size,
        data_options=parse_data_options(data_options),
        device=device,
        resume=not restart,
        progress=not quiet,
        log=functools.partial(note, quiet),
        worker_logs=debugging(),
    )
    note(quiet, f"scored on the cluster; written to {scores}")
