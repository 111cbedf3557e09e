"""Options and helpers shared by the ``mmocc`` commands.

Only :mod:`click` and the standard library are imported here; the
``--threads`` callback sets torch's threads when torch is already imported,
else ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

SRC_HELP = (
    "Data source: a manifest .csv (label column optional), a folder root/[<label>/]<sample>/<view>.png, "
    "pairs:DIR_A,DIR_B (one folder per camera, files paired by name), turntable:PATH, mfeat:PATH, "
    "or synthetic[:n_per_class=N,...]."
)
"""Help of the ``--data SRC`` options."""


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """Set the CPU thread count of torch, or of ONNX Runtime for an ONNX export (option callback).

    Before torch is imported, ``OMP_NUM_THREADS``, which torch and
    :class:`mmocc.export.runtime.OnnxDetector` read, is set instead, so a
    command that scores an ONNX export does not import torch for it.
    """
    if value is None:
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(value)
    else:
        os.environ["OMP_NUM_THREADS"] = str(value)


_DEBUG = "mmocc.debug"
"""The key of ``click.Context.meta`` that ``--debug`` sets."""


def _debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Record ``--debug`` for :func:`debugging` (option callback)."""
    ctx.meta[_DEBUG] = value


def debugging() -> bool:
    """Whether the running command was given ``--debug``, or the environment sets ``MMOCC_DEBUG=1``.

    Returns
    -------
    bool
        True to show what is otherwise kept off standard error (tracebacks,
        a cluster's logs).
    """
    context = click.get_current_context(silent=True)
    flag = context is not None and bool(context.meta.get(_DEBUG))
    return flag or os.environ.get("MMOCC_DEBUG", "") not in ("", "0")


def common(
    *, device: bool = True, seed: str | None = None, threads: int | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the options shared by the commands.

    Parameters
    ----------
    device : bool, default True
        Add ``--device`` and ``--threads``.
    seed : str, optional
        The help of a ``--seed`` option; None: no such option.
    threads : int, optional
        The default of ``--threads``; None leaves torch's choice.

    Returns
    -------
    callable
        A decorator adding ``--quiet``, ``--debug`` and the requested options.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--quiet", "-q", is_flag=True, help="No progress bars or informational messages."),
            click.option(
                "--debug",
                is_flag=True,
                expose_value=False,
                callback=_debug,
                help="Show tracebacks of errors, and a cluster's logs.",
            ),
        ]
        if device:
            options += [
                click.option(
                    "--device",
                    default="auto",
                    show_default=True,
                    help="Torch device: auto (CUDA when available), cpu, cuda, cuda:1, ...",
                ),
                click.option(
                    "--threads",
                    type=click.IntRange(min=1),
                    default=threads,
                    callback=_set_threads,
                    expose_value=False,
                    help="CPU threads of torch."
                    + ("  [default: torch's choice]" if threads is None else f"  [default: {threads}]"),
                ),
            ]
        if seed is not None:
            options.append(click.option("--seed", type=click.IntRange(min=0), default=None, help=seed))
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


STDOUT = Path("-")
"""The ``--out`` value that means standard output, where a command allows it."""


def check_out(ctx: click.Context, param: click.Parameter, value: Path, *, stdout: bool) -> Path:
    """Refuse an ``--out`` that is a link, folder, pipe or device before any work (option callback)."""
    from mmocc.utils.files import check_output_file

    if value == STDOUT:
        if not stdout:
            raise click.BadParameter("this command cannot write to standard output ('-'); give a file name")
        return value
    try:
        check_output_file(value)
    except ValueError as exc:
        hint = "; '-' writes to standard output" if stdout else ""
        raise click.BadParameter(f"{exc}{hint}") from None
    return value


def out_option(help: str, *, stdout: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return the required ``--out FILE`` option of a command that writes one file.

    The file is checked up front (see :func:`mmocc.utils.files.check_output_file`),
    so that a link, folder, named pipe or device is refused before the
    command loads or trains anything.

    Parameters
    ----------
    help : str
        The option's help.
    stdout : bool, default False
        Accept ``-`` (:data:`STDOUT`) for standard output; otherwise ``-`` is
        refused.

    Returns
    -------
    callable
        The click option decorator.
    """
    return click.option(
        "--out",
        required=True,
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        callback=functools.partial(check_out, stdout=stdout),
        help=help + ("  '-' writes to standard output." if stdout else ""),
    )


def note(quiet: bool, message: str) -> None:
    """Print an informational message on stderr unless quiet.

    Parameters
    ----------
    quiet : bool
        The ``--quiet`` flag.
    message : str
        The message.
    """
    if not quiet:
        click.echo(message, err=True)


_NO_CACHE = "mmocc.no_cache"
"""The key of ``click.Context.meta`` that ``--no-cache`` sets."""


def parse_data_options(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--data-option KEY=VALUE`` items, and ``--no-cache`` when the command has it.

    Parameters
    ----------
    items : sequence of str
        The option's values.

    Returns
    -------
    dict
        The loader options, values read as TOML literals; ``cache=False``
        when the running command was given ``--no-cache``.

    Raises
    ------
    click.BadParameter
        For ``--no-cache`` with ``-O cache=...``.

    Examples
    --------
    >>> parse_data_options(["size=32", "cache=false"])
    {'size': 32, 'cache': False}
    """
    from mmocc.utils.text import parse_assignments

    options = parse_assignments(items, "--data-option")
    context = click.get_current_context(silent=True)
    if context is None or not context.meta.get(_NO_CACHE):
        return options
    if "cache" in options:
        raise click.BadParameter("give --no-cache or -O cache=..., not both", param_hint="--no-cache")
    return {**options, "cache": False}


def _no_cache(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Record ``--no-cache`` for :func:`parse_data_options` (option callback)."""
    ctx.meta[_NO_CACHE] = value


def data_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--data-option/-O KEY=VALUE`` (loader options) and ``--no-cache`` to a command.

    Parameters
    ----------
    func : callable
        The command function; it receives the ``-O`` items as
        ``data_options`` and reads them with :func:`parse_data_options`.

    Returns
    -------
    callable
        The function with the options.
    """
    func = click.option(
        "--no-cache",
        is_flag=True,
        expose_value=False,
        callback=_no_cache,
        help="Decode every image again: neither read nor write the image cache (-O cache=false).",
    )(func)
    return click.option(
        "--data-option",
        "-O",
        "data_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="Loader option, e.g. -O delta_deg=45 -O cache=false (values are TOML literals); "
        "-O views=left:front,right:side reads the columns (or folders) left and right as views front "
        "and side.",
    )(func)


batch_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Samples scored per chunk; bounds memory.",
)
"""The ``--batch-size`` option."""
