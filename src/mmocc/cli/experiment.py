"""The ``mmocc demo`` and ``mmocc experiment`` commands."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mmocc.cli.options import SRC_HELP, common, note


def demo_config(*, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Return the experiment config of ``mmocc demo``.

    Parameters
    ----------
    quick : bool, default False
        A seconds-long version for tests: tiny models, one task.
    seed : int, default 0
        The seed of the single run per model.

    Returns
    -------
    dict
        A config for :func:`mmocc.evaluation.runner.run_experiment`: the multimodal
        default-preset model against each single view, and the paper's
        multimodal model.

    Examples
    --------
    >>> list(demo_config(quick=True)["models"])
    ['multimodal', 'dorsal_only', 'lateral_only', 'paper_multimodal']
    """
    tuned: dict[str, Any] = {"epochs": 1, "filters": [4, 4]} if quick else {}
    paper: dict[str, Any] = {"epochs": 1, "filters": [4, 4]} if quick else {}
    return {
        "name": "mmocc demo: multimodal vs unimodal on synthetic two-view data",
        "seeds": [seed],
        "table_metrics": ["anomaly_recall", "p_at_n", "roc_auc"],
        "data": {"size": 32},
        "split": {"normal": [0] if quick else [0, 1], "train_fraction": 0.66},
        "models": {
            "multimodal": {"kind": "mmocc", **tuned},
            "dorsal_only": {"kind": "mmocc", "views": [0], **tuned},
            "lateral_only": {"kind": "mmocc", "views": [1], **tuned},
            "paper_multimodal": {"kind": "mmocc", "preset": "paper", **paper},
        },
    }


@contextmanager
def _plots_hint() -> Iterator[None]:
    """Report a missing matplotlib as a one-line usage error naming the fix."""
    from mmocc.evaluation.plots import MatplotlibMissingError

    try:
        yield
    except MatplotlibMissingError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the artefacts (results, table, plots) in this folder; default a temporary folder.",
)
@click.option("--no-plots", is_flag=True, help="Do not draw figures (they are drawn only with --out).")
@click.option("--quick", is_flag=True, hidden=True, help="A tiny version for tests.")
@common(seed="Seed of the split and the models.  [default: 0]", threads=1)
def demo(out: Path | None, no_plots: bool, quick: bool, quiet: bool, device: str, seed: int | None) -> None:
    """Run a small Table-I-style experiment on synthetic two-view data and print the table.

    The multimodal model (default preset) is compared with the same model
    on each single view and with the paper's multimodal model, on two
    one-class tasks of generated two-camera images. The demo runs torch on
    one CPU thread by default: its small models gain little from more
    threads and slow down badly when the cores are busy.
    """
    from mmocc.evaluation.runner import run_experiment

    config = demo_config(quick=quick, seed=seed or 0)
    config["plots"] = out is not None and not no_plots
    source = "synthetic:n_per_class=24,n_classes=3" if quick else "synthetic:n_per_class=60,n_classes=4"
    note(quiet, f"mmocc demo: {source}, {len(config['models'])} models; this takes about a minute")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmocc-demo-") as tmp, _plots_hint():
        result = run_experiment(config, source, out or tmp, progress=not quiet, device=device)
    click.echo(result.markdown, nl=False)
    note(quiet, f"done in {time.perf_counter() - started:.1f} s" + (f"; artefacts in {out}" if out else ""))


@click.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", metavar="SRC", help=SRC_HELP + " Overrides [data] source of the config.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--no-plots", is_flag=True, help="Do not draw figures.")
@common(seed="Run only this seed instead of the config's seeds.")
def experiment(
    config: Path, src: str | None, out: Path, no_plots: bool, quiet: bool, device: str, seed: int | None
) -> None:
    """Run the experiment of a TOML CONFIG and write results, table and plots to --out.

    Finished runs found in --out are reused, so an interrupted experiment
    resumes. --seed runs only that seed instead of the config's seeds.
    Before running, stderr says how many runs there are, how many are
    reused and how many are new, then a rough time estimate for the new
    runs; the progress bar counts and times the new runs only.
    """
    from mmocc.evaluation.config import load_config
    from mmocc.evaluation.runner import run_experiment

    cfg = load_config(config)
    if no_plots:
        cfg = dataclasses.replace(cfg, plots=False)
    if seed is not None:
        cfg = dataclasses.replace(cfg, seeds=(seed,))
    with _plots_hint():
        result = run_experiment(
            cfg, src, out, progress=not quiet, device=device, notify=functools.partial(note, quiet)
        )
    click.echo(result.markdown, nl=False)
    runs = "1 run" if result.n_runs == 1 else f"{result.n_runs} runs"
    note(quiet, f"{runs} ({result.n_reused} reused); results in {out}")
