"""The ``mmocc train``, ``score``, ``evaluate`` and ``info`` commands.

numpy, tqdm, torch and the estimators are imported inside the command
bodies, so ``mmocc --help`` stays fast.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmocc.cli.options import SRC_HELP, batch_option, common, data_option, note, parse_data_options

if TYPE_CHECKING:
    import numpy as np

_CLI_OWNED = {
    "views": "use --views",
    "random_state": "use --seed",
    "device": "use --device",
    "verbose": "use --quiet",
}
"""MultimodalOCC parameters that ``mmocc train`` sets from its own options."""

PRESET_NAMES: tuple[str, ...] = ("default", "patch", "pretrained", "paper")
"""The presets of :mod:`mmocc.model.hyperparams` (listed here so that ``--help`` does not import torch)."""


def _view_list(text: str | None) -> list[str | int] | None:
    """Split ``--views a,1`` into names and 0-based positions."""
    if text is None:
        return None
    items = (part.strip() for part in text.split(","))
    return [int(item) if item.isdigit() else item for item in items]


def _model_params(items: Sequence[str], explicit: dict[str, Any]) -> dict[str, Any]:
    """Merge ``--param KEY=VALUE`` items with the dedicated options; check names and values."""
    from mmocc.evaluation.models import ConfigError, check_model_params
    from mmocc.utils import parse_assignments

    params = parse_assignments(items, "--param")
    given = {key: value for key, value in explicit.items() if value is not None}
    both = sorted(set(params) & set(given))
    if both:
        raise click.BadParameter(f"{both} given both as --param and as its own option", param_hint="--param")
    merged = {**params, **given}
    try:
        check_model_params("mmocc", merged, "--param", reserved=_CLI_OWNED, noun="parameter")
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return merged


def _resolve_views(text: str | None, view_names: list[str]) -> list[str] | None:
    """Turn ``--views`` into the dataset's view names."""
    from mmocc.evaluation.models import ConfigError, resolve_views

    try:
        return resolve_views(_view_list(text), view_names)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--views") from None


@click.command()
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@click.option("--normal", required=True, metavar="LABEL", help="The normal class; all its samples train.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Model file to write."
)
@click.option("--views", metavar="A,B", help="Views to use, by name or 0-based position (default: all).")
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    help="Hyper-parameter preset: default (another object), patch or pretrained (local defects), paper.  "
    "[default: default]",
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
@data_option
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any MultimodalOCC hyper-parameter, e.g. -p filters=[32,16] -p diversity=logdet.",
)
@common(seed="Seed of the model's initialisation and shuffling.  [default: 0]")
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

    options = parse_data_options(data_options)
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
    note(
        quiet,
        f"training on {len(train_set)} samples of class {label!r}, views {clf.views or dataset.view_names}",
    )
    clf.fit(train_set)
    clf.save(out)
    note(quiet, f"threshold {clf.threshold_:.6g}; model written to {out}")


def _load_for_model(model_path: Path, src: str, options: Sequence[str], device: str) -> tuple[Any, Any]:
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
    return clf, source.load(**{**derived, **parse_data_options(options)})


def score_chunks(
    clf: Any, dataset: Any, batch_size: int, quiet: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """Score a dataset chunk by chunk, with a progress bar.

    Parameters
    ----------
    clf : fitted detector
        Has ``decision_function``.
    dataset : MultiViewDataset
        The samples to score.
    batch_size : int
        Samples per chunk.
    quiet : bool
        Hide the progress bar (it shows only on a terminal anyway).

    Yields
    ------
    (numpy.ndarray, numpy.ndarray, dict)
        The ids, anomaly scores and per-view scores (empty when the model's
        rule scores views jointly, or it has no per-view scores) of one chunk.
    """
    from tqdm.auto import tqdm

    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="scoring", unit="chunk", disable=True if quiet else None):
        chunk = dataset[start : start + batch_size]
        if hasattr(clf, "decision_function_by_view"):
            yield chunk.ids, *clf.decision_function_by_view(chunk)
        else:
            yield chunk.ids, clf.decision_function(chunk), {}


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write."
)
@data_option
@batch_option
@common()
def score(
    model: Path, src: str, out: Path, data_options: tuple[str, ...], batch_size: int, quiet: bool, device: str
) -> None:
    """Score every sample of SRC with MODEL; write sample_id, score, is_anomaly to a CSV file.

    Where the model's scoring rule scores each view (patch, recon, or knn with
    a per-view bank, as in the default preset), one standardized
    ``score_<view>`` column per view follows: the highest names the camera
    that saw the anomaly. The image size and colour mode are read from the
    model. Samples are scored in chunks and written as they go; the file
    appears only when complete.
    """
    from mmocc.utils import atomic_open

    clf, dataset = _load_for_model(model, src, data_options, device)
    n_anomalies = 0
    with atomic_open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for i, (ids, scores, by_view) in enumerate(score_chunks(clf, dataset, batch_size, quiet)):
            if i == 0:
                writer.writerow(["sample_id", "score", "is_anomaly", *(f"score_{v}" for v in by_view)])
            flags = (scores > clf.threshold_).astype(int)
            n_anomalies += int(flags.sum())
            columns = [ids.tolist(), scores.tolist(), flags.tolist(), *(v.tolist() for v in by_view.values())]
            writer.writerows(zip(*columns, strict=True))
    note(quiet, f"scored {len(dataset)} samples, {n_anomalies} above the threshold; written to {out}")


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@click.option(
    "--normal", required=True, metavar="LABEL", help="The normal class; every other class is an anomaly."
)
@data_option
@batch_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@common()
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
    import numpy as np

    from mmocc.data.sources import find_label
    from mmocc.evaluation.metrics import evaluate as compute_metrics

    clf, dataset = _load_for_model(model, src, data_options, device)
    label = find_label(dataset, normal)
    scores = np.concatenate([s for _, s, _ in score_chunks(clf, dataset, batch_size, quiet)])
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


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the model's whole JSON header.")
@common(device=False)
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
