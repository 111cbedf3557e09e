"""The ``mmocc`` command group, its error handling and the console entry point :func:`main`.

Every expected error (bad path, unknown option or config key, label not in
the data, model that does not fit the data, full disk, ...) is reported as
one line ``mmocc: error: ...`` on stderr with exit code 2; ``--debug`` (or
the environment variable ``MMOCC_DEBUG=1``) shows the traceback instead,
except for command-line usage errors, which are always one line. Ctrl-C
(SIGINT) ends a command with ``mmocc: interrupted`` and exit code 130,
SIGTERM with ``mmocc: terminated`` and 143; either way the file being
written is removed, as after an error. ``mmocc`` alone prints the help.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from mmocc import __version__
from mmocc.cli.cache import cache
from mmocc.cli.commands import info, score, train
from mmocc.cli.evaluate import evaluate
from mmocc.cli.experiment import demo, experiment
from mmocc.cli.export import export
from mmocc.cli.report import report

_EXPECTED_ERRORS = (ValueError, TypeError, OSError, ModuleNotFoundError)


@click.group(
    invoke_without_command=True,
    subcommand_metavar="COMMAND [ARGS]...",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", "-V", prog_name="mmocc")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Multimodal one-class classification: train, score and evaluate detectors on multi-view data.

    SRC (the --data option) names a data source: a manifest .csv, a folder
    laid out as root/<label>/<sample>/<view>.<ext>, turntable:PATH
    (COIL-20/100 photos), mfeat:PATH (UCI Multiple Features), or
    synthetic[:n_per_class=N,n_classes=K,size=S]. Relative paths are resolved
    against the current folder.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _command in (demo, train, score, evaluate, report, experiment, export, info, cache):
    cli.add_command(_command)


def _error_message(exc: BaseException) -> str:
    """One line describing an expected error."""
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Print a warning as one line on stderr."""
    click.echo(f"mmocc: warning: {' '.join(str(message).split())}", err=True)


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM, so that cleanups run."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into :class:`Terminated` (signal handler)."""
    raise Terminated


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Make SIGTERM raise :class:`Terminated` for the duration, unless it is ignored."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``mmocc`` command and exit with its status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments; default ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # Spinning OpenMP threads collapse when other processes share the cores (12x slower measured);
    # the policy is read when torch loads its OpenMP runtime, which the commands do after this.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    debug = "--debug" in args or os.environ.get("MMOCC_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings(), _sigterm_raises():
        warnings.showwarning = _show_warning
        try:
            status = cli.main(args=args, prog_name="mmocc", standalone_mode=False)
        except click.Abort:
            click.echo("mmocc: interrupted", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("mmocc: terminated", err=True)
            sys.exit(143)
        except (click.ClickException, *_EXPECTED_ERRORS) as exc:
            if debug and not isinstance(exc, click.ClickException):
                raise
            click.echo(f"mmocc: error: {_error_message(exc)}", err=True)
            sys.exit(2)
    sys.exit(status if isinstance(status, int) else 0)
