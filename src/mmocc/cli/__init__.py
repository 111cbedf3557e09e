"""The ``mmocc`` command line.

Every expected error (bad path, unknown option or config key, label not in
the data, model that does not fit the data, ...) is reported as one line
``mmocc: error: ...`` on stderr with exit code 2; ``--debug`` (or the
environment variable ``MMOCC_DEBUG=1``) shows the traceback instead, except
for command-line usage errors, which are always one line.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm.auto import tqdm

from mmocc import __version__

_EXPECTED_ERRORS = (ValueError, TypeError, OSError)
_SRC_HELP = (
    "Data source: a manifest .csv, a folder root/<label>/<sample>/<view>.png, "
    "turntable:PATH, mfeat:PATH, or synthetic[:n_per_class=N,...]."
)


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """Set torch's CPU thread count (option callback)."""
    if value is not None:
        import torch

        torch.set_num_threads(value)


def _common(
    *, device: bool = True, seed: str | None = None, threads: int | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the options shared by the commands.

    ``seed`` is the help of a ``--seed`` option (None: no such option) and
    ``threads`` the default of ``--threads``.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--quiet", "-q", is_flag=True, help="No progress bars or informational messages."),
            click.option("--debug", is_flag=True, expose_value=False, help="Show tracebacks of errors."),
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


def _info(quiet: bool, message: str) -> None:
    """Print an informational message on stderr unless quiet."""
    if not quiet:
        click.echo(message, err=True)


def _data_options(items: Sequence[str]) -> dict[str, Any]:
    from mmocc.utils import parse_assignments

    return parse_assignments(items, "--data-option")


_data_option = click.option(
    "--data-option",
    "-O",
    "data_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Loader option, e.g. -O delta_deg=45 -O cache=false (values are TOML literals).",
)
_batch_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Samples scored per chunk; bounds memory.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mmocc")
def cli() -> None:
    """Multimodal one-class classification: train, score and evaluate detectors on multi-view data.

    SRC (the --data option) names a data source: a manifest .csv, a folder
    laid out as root/<label>/<sample>/<view>.<ext>, turntable:PATH
    (COIL-20/100 photos), mfeat:PATH (UCI Multiple Features), or
    synthetic[:n_per_class=N,n_classes=K,size=S]. Relative paths are resolved
    against the current folder.
    """


# ---------------------------------------------------------------------- demo
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


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the artefacts (results, table, plots) in this folder; default a temporary folder.",
)
@click.option("--no-plots", is_flag=True, help="Do not draw figures (they are drawn only with --out).")
@click.option("--quick", is_flag=True, hidden=True, help="A tiny version for tests.")
@_common(seed="Seed of the split and the models.  [default: 0]", threads=1)
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
    _info(quiet, f"mmocc demo: {source}, {len(config['models'])} models; this takes about a minute")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmocc-demo-") as tmp:
        result = run_experiment(config, source, out or tmp, progress=not quiet, device=device)
    click.echo(result.markdown, nl=False)
    _info(quiet, f"done in {time.perf_counter() - started:.1f} s" + (f"; artefacts in {out}" if out else ""))


# --------------------------------------------------------------------- train
def _resolve_views(text: str | None, view_names: list[str]) -> list[str] | None:
    """Turn ``--views a,b`` (names or 0-based positions) into view names."""
    if text is None:
        return None
    from mmocc.utils import did_you_mean

    out = []
    for item in (part.strip() for part in text.split(",")):
        if item.isdigit():
            if int(item) >= len(view_names):
                raise click.BadParameter(f"view position {item} is out of range; views: {view_names}")
            out.append(view_names[int(item)])
        elif item in view_names:
            out.append(item)
        else:
            raise click.BadParameter(
                f"view {item!r} is not in the data{did_you_mean(item, view_names)}; views: {view_names}"
            )
    return out


def _model_params(items: Sequence[str], explicit: dict[str, Any]) -> dict[str, Any]:
    """Merge ``--param KEY=VALUE`` items with the dedicated options, checking the names."""
    from mmocc.detector import MultimodalOCC
    from mmocc.evaluation.config import RUNNER_PARAMS
    from mmocc.utils import did_you_mean, parse_assignments

    params = parse_assignments(items, "--param")
    valid = sorted(set(MultimodalOCC().get_params()) - set(RUNNER_PARAMS) - {"views"})
    for key in params:
        if key not in valid:
            raise click.BadParameter(
                f"{key!r} is not a MultimodalOCC parameter{did_you_mean(key, valid)} "
                f"(parameters: {', '.join(valid)})",
                param_hint="--param",
            )
    given = {key: value for key, value in explicit.items() if value is not None}
    both = sorted(set(params) & set(given))
    if both:
        raise click.BadParameter(f"{both} given both as --param and as its own option", param_hint="--param")
    return {**params, **given}


@cli.command()
@click.option("--data", "src", required=True, metavar="SRC", help=_SRC_HELP)
@click.option("--normal", required=True, metavar="LABEL", help="The normal class; all its samples train.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Model file to write."
)
@click.option("--views", metavar="A,B", help="Views to use, by name or 0-based position (default: all).")
@click.option(
    "--preset", type=click.Choice(["default", "paper"]), help="Hyper-parameter preset.  [default: default]"
)
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (default: the preset's).")
@click.option(
    "--contamination",
    type=click.FloatRange(0, 0.5, min_open=True),
    help="Fraction of training samples above the threshold.  [default: 0.05]",
)
@click.option("--size", type=click.IntRange(min=1), help="Image size to load (default: the loader's).")
@click.option(
    "--mode", type=click.Choice(["RGB", "L"]), help="Image colour mode to load (default: the loader's)."
)
@_data_option
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any MultimodalOCC hyper-parameter, e.g. -p filters=[32,16] -p diversity=logdet.",
)
@_common(seed="Seed of the model's initialisation and shuffling.  [default: 0]")
def train(
    src: str,
    normal: str,
    out: Path,
    views: str | None,
    preset: str | None,
    epochs: int | None,
    contamination: float | None,
    size: int | None,
    mode: str | None,
    data_options: tuple[str, ...],
    params: tuple[str, ...],
    quiet: bool,
    device: str,
    seed: int | None,
) -> None:
    """Train a MultimodalOCC on every sample of the normal class of SRC and save it."""
    from mmocc.data.sources import find_label, load_source
    from mmocc.detector import MultimodalOCC

    options = _data_options(data_options)
    options.update({key: value for key, value in (("size", size), ("mode", mode)) if value is not None})
    hyper = _model_params(params, {"preset": preset, "epochs": epochs, "contamination": contamination})
    dataset = load_source(src, **options)
    label = find_label(dataset, normal)
    train_set = dataset[dataset.labels == label]
    clf = MultimodalOCC(
        **hyper,
        views=_resolve_views(views, dataset.view_names),
        device=device,
        random_state=0 if seed is None else seed,
        verbose=not quiet and sys.stderr.isatty(),
    )
    _info(
        quiet,
        f"training on {len(train_set)} samples of class {label!r}, views {clf.views or dataset.view_names}",
    )
    clf.fit(train_set)
    clf.save(out)
    _info(quiet, f"threshold {clf.threshold_:.6g}; model written to {out}")


# -------------------------------------------------------------- score/evaluate
def _load_for_model(model_path: Path, src: str, data_options: Sequence[str], device: str) -> tuple[Any, Any]:
    """Load a model and the data to score, at the image size and mode the model expects."""
    import mmocc
    from mmocc.data.sources import parse_source

    clf = mmocc.load(model_path, device=device)
    source = parse_source(src)
    accepted = source.option_names()
    derived: dict[str, Any] = {}
    images = [spec for spec in clf.view_specs_ if spec.kind == "image"]
    if images and "size" in accepted:
        derived["size"] = images[0].shape[1]
    if images and "mode" in accepted and images[0].shape[0] in (1, 3):
        derived["mode"] = "L" if images[0].shape[0] == 1 else "RGB"
    if "views" in accepted:
        derived["views"] = [spec.name for spec in clf.view_specs_]
    derived = {key: value for key, value in derived.items() if key not in source.options}
    return clf, source.load(**{**derived, **_data_options(data_options)})


def _score_chunks(
    clf: Any, dataset: Any, batch_size: int, quiet: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(ids, scores)`` chunk by chunk."""
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="scoring", unit="chunk", disable=True if quiet else None):
        chunk = dataset[start : start + batch_size]
        yield chunk.ids, clf.decision_function(chunk)


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=_SRC_HELP)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write."
)
@_data_option
@_batch_option
@_common()
def score(
    model: Path, src: str, out: Path, data_options: tuple[str, ...], batch_size: int, quiet: bool, device: str
) -> None:
    """Score every sample of SRC with MODEL; write sample_id, score, is_anomaly to a CSV file.

    The image size and colour mode are read from the model. Samples are
    scored in chunks and written as they go; the file appears only when
    complete.
    """
    from mmocc.utils import atomic_open

    clf, dataset = _load_for_model(model, src, data_options, device)
    n_anomalies = 0
    with atomic_open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "score", "is_anomaly"])
        for ids, scores in _score_chunks(clf, dataset, batch_size, quiet):
            flags = (scores > clf.threshold_).astype(int)
            n_anomalies += int(flags.sum())
            writer.writerows(zip(ids.tolist(), scores.tolist(), flags.tolist(), strict=True))
    _info(quiet, f"scored {len(dataset)} samples, {n_anomalies} above the threshold; written to {out}")


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=_SRC_HELP)
@click.option(
    "--normal", required=True, metavar="LABEL", help="The normal class; every other class is an anomaly."
)
@_data_option
@_batch_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@_common()
def evaluate(
    model: Path,
    src: str,
    normal: str,
    data_options: tuple[str, ...],
    batch_size: int,
    as_json: bool,
    quiet: bool,
    device: str,
) -> None:
    """Print the metrics of MODEL on every sample of SRC (anomaly = label other than the normal class)."""
    from mmocc.data.sources import find_label
    from mmocc.evaluation.metrics import evaluate as compute_metrics

    clf, dataset = _load_for_model(model, src, data_options, device)
    label = find_label(dataset, normal)
    scores = np.concatenate([s for _, s in _score_chunks(clf, dataset, batch_size, quiet)])
    y = (dataset.labels != label).astype(np.int64)
    metrics = compute_metrics(y, scores, clf.threshold_)
    summary = {"n_samples": len(y), "n_normal": int((y == 0).sum()), "n_anomalies": int(y.sum())}
    if as_json:
        click.echo(json.dumps({**summary, "threshold": clf.threshold_, **metrics}, indent=2))
        return
    click.echo(
        f"{summary['n_samples']} samples ({summary['n_normal']} normal, {summary['n_anomalies']} anomalies), "
        f"threshold {clf.threshold_:.6g}"
    )
    width = max(map(len, metrics))
    for name, value in metrics.items():
        click.echo(f"{name:<{width}}  {value:.4f}")


# ---------------------------------------------------------------- experiment
@cli.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", metavar="SRC", help=_SRC_HELP + " Overrides [data] source of the config.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--no-plots", is_flag=True, help="Do not draw figures.")
@_common(seed="Run only this seed instead of the config's seeds.")
def experiment(
    config: Path, src: str | None, out: Path, no_plots: bool, quiet: bool, device: str, seed: int | None
) -> None:
    """Run the experiment of a TOML CONFIG and write results, table and plots to --out.

    Finished runs found in --out are reused, so an interrupted experiment
    resumes. --seed runs only that seed instead of the config's seeds.
    """
    from mmocc.evaluation.config import load_config
    from mmocc.evaluation.runner import run_experiment

    cfg = load_config(config)
    if no_plots:
        cfg = dataclasses.replace(cfg, plots=False)
    if seed is not None:
        cfg = dataclasses.replace(cfg, seeds=(seed,))
    result = run_experiment(cfg, src, out, progress=not quiet, device=device)
    click.echo(result.markdown, nl=False)
    _info(quiet, f"{result.n_runs} runs ({result.n_reused} reused); results in {out}")


# ---------------------------------------------------------------------- info
@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the model's whole JSON header.")
@_common(device=False)
def info(model: Path, as_json: bool, quiet: bool) -> None:
    """Show what MODEL expects: views and shapes, threshold, training set, parameters, versions."""
    from mmocc.io import read_config

    config, _ = read_config(model)
    if as_json:
        click.echo(json.dumps(config, indent=2))
        return
    explicit = {k: v for k, v in config["estimator_params"].items() if v is not None}
    lines = [
        f"model:      {model}",
        f"written by: mmocc {config['mmocc_version']}, torch {config['torch_version']}; "
        f"trained on {config.get('trained_on', '?')}",
        "views:",
        *(f"  {v['name']:<16} {v['kind']:<7} {tuple(v['shape'])}" for v in config["views"]),
        f"threshold:  {config['threshold']:.6g} (contamination {explicit.get('contamination')})",
        f"training:   {config['n_samples_in']} samples",
        f"preset:     {explicit.get('preset')}",
        "parameters: " + ", ".join(f"{k}={v}" for k, v in config["params"].items()),
    ]
    history = config.get("history") or []
    if history:
        lines.append(f"history:    {len(history)} epochs, final loss {history[-1]['loss']:.6g}")
    click.echo("\n".join(lines))


# ---------------------------------------------------------------------- main
def _error_message(exc: BaseException) -> str:
    """One line describing an expected error."""
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
    elif isinstance(exc, FileNotFoundError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Print a warning as one line on stderr."""
    click.echo(f"mmocc: warning: {' '.join(str(message).split())}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``mmocc`` command and exit with its status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments; default ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MMOCC_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            status = cli.main(args=args, prog_name="mmocc", standalone_mode=False)
        except click.Abort:
            click.echo("mmocc: interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, *_EXPECTED_ERRORS) as exc:
            if debug and not isinstance(exc, click.ClickException):
                raise
            click.echo(f"mmocc: error: {_error_message(exc)}", err=True)
            sys.exit(2)
    sys.exit(status if isinstance(status, int) else 0)
