"""The ``mmocc train``, ``score`` and ``info`` commands (``evaluate`` is :mod:`mmocc.cli.evaluate`).

numpy, tqdm, torch and the estimators are imported inside the command
bodies, so ``mmocc --help`` stays fast.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from mmocc.cli.cluster import cluster_options, score_on_cluster, score_out_option
from mmocc.cli.options import (
    SRC_HELP,
    STDOUT,
    batch_option,
    common,
    data_option,
    note,
    out_option,
    parse_data_options,
)

_CLI_OWNED = {
    "views": "use --views",
    "random_state": "use --seed",
    "device": "use --device",
    "verbose": "use --quiet",
}
"""MultimodalOCC parameters that ``mmocc train`` sets from its own options."""

PRESET_NAMES: tuple[str, ...] = ("default", "patch", "pretrained", "combined", "paper")
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
    from mmocc.utils.text import parse_assignments

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


def _patch_size_follows(hyper: dict[str, Any], size: Any, quiet: bool) -> dict[str, Any]:
    """Let a pretrained backbone's ``patch_size`` follow the image size loaded, unless ``hyper`` sets it."""
    if isinstance(size, bool) or not isinstance(size, int) or "patch_size" in hyper:
        return hyper
    from mmocc.detectors.multimodal import MultimodalOCC
    from mmocc.model.patches import AUTOENCODER

    resolved = MultimodalOCC(**hyper).resolved_params()
    backbone = resolved.score in ("patch", "combined") and resolved.patch_backbone != AUTOENCODER
    if not backbone or resolved.patch_size in (None, size):
        return hyper
    try:
        MultimodalOCC(**hyper, patch_size=size).resolved_params()
    except ValueError as exc:
        note(quiet, f"patch_size stays {resolved.patch_size}, not the image size {size}: {exc}")
        return hyper
    followed = f"patch_size={size} follows the image size (instead of {resolved.patch_size})"
    note(quiet, f"{followed}; -p patch_size=N sets it")
    return {**hyper, "patch_size": size}


def _resolve_views(text: str | None, view_names: list[str]) -> list[str] | None:
    """Turn ``--views`` into the dataset's view names."""
    from mmocc.evaluation.models import ConfigError, resolve_views

    try:
        return resolve_views(_view_list(text), view_names)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--views") from None


def _view_sources(dataset: Any) -> dict[str, str]:
    """Return the folder (or file) each view's images come from: the common path of its files."""
    import os

    sources = {}
    for view, paths in dataset.paths.items():
        try:
            common = os.path.commonpath(paths.tolist()) if len(paths) > 1 else str(paths[0])
        except ValueError:  # relative and absolute paths mixed
            common = "(various)"
        sources[view] = os.path.abspath(common) if common != "(various)" else common
    return sources


def _training_split(dataset: Any, label: Any, holdout: float | None, seed: int) -> tuple[Any, dict[str, Any]]:
    """Return the training samples of class ``label`` and how they were chosen (for the metadata)."""
    import numpy as np

    from mmocc.data.tasks import one_class_split, own_training_split

    own_train = own_training_split(dataset)
    if own_train is not None:  # the data's own protocol (MVTec AD): train on its training split only
        dataset = dataset[own_train]
    is_normal = dataset.labels == label
    if holdout is None:
        return dataset[is_normal], {"n_normal": int(is_normal.sum()), "holdout": None}
    grouped = dataset.groups is not None and len(np.unique(dataset.groups[is_normal])) >= 2
    split = "group" if grouped else "random"
    try:
        task = one_class_split(dataset, label, train_fraction=1.0 - holdout, split=split, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--holdout") from None
    held = np.setdiff1d(np.flatnonzero(is_normal), task.train_index)
    return task.train, {
        "n_normal": int(is_normal.sum()),
        "holdout": {
            "fraction": holdout,
            "split": split,
            "seed": seed,
            "n_held_out": len(held),
            "held_out_ids": dataset.ids[held].tolist(),
        },
    }


@click.command()
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@click.option("--normal", required=True, metavar="LABEL", help="The normal class; its samples train.")
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Keep this share of the normal samples (of their groups, when they span several) out of "
    "training, for an honest `mmocc evaluate` on the same SRC; the split is recorded in the model.",
)
@out_option("Model file to write.")
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
@click.option(
    "--size",
    type=click.IntRange(min=1),
    help="Image size to load (default: the loader's). Images are stretched to a square unless "
    "-O resize=pad (keep the aspect, zero padding) or -O resize=crop (centre crop); the model records "
    "it. With a pretrained backbone (preset pretrained) its input, patch_size, follows the size unless "
    "-p patch_size=N is given; -p tile_size=64 shows it 64 px tiles of larger images.",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "RGB", "L"]),
    help="Image colour mode to load (default: the loader's; auto = greyscale when the files are).",
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
    holdout: float | None,
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
    """Train a MultimodalOCC on the normal class of SRC and save it.

    Every sample of the class trains, unless --holdout keeps a share out for
    `mmocc evaluate`. The model file records the normal class, SRC, each
    view's source and the training samples' fingerprints, so that
    `evaluate` needs no --normal and leaves the training samples out.

    The threshold comes from the training scores (-p threshold=train, the
    default); -p threshold=holdout [-p validation_fraction=0.2] takes it
    from normals held out of fitting (whole groups when SRC has groups),
    which is honest when new normals come from new specimens or sessions.
    From Python, clf.calibrate(normals) takes it from normals you pass.
    --holdout does not change it. The last line says which source was used.
    """
    from mmocc.data.sources import find_label
    from mmocc.data.streaming import plan_source
    from mmocc.detectors.multimodal import MultimodalOCC

    options = parse_data_options(data_options)
    options.update({key: value for key, value in (("size", size), ("mode", mode)) if value is not None})
    hyper = _model_params(params, {"preset": preset, "epochs": epochs, "contamination": contamination})
    hyper = _patch_size_follows(hyper, options.get("size"), quiet)
    plan = plan_source(src, **options)
    dataset = plan.load()
    label = find_label(dataset, normal)
    seed = 0 if seed is None else seed
    train_set, split = _training_split(dataset, label, holdout, seed)
    clf = MultimodalOCC(
        **hyper,
        views=_resolve_views(views, dataset.view_names),
        device=device,
        random_state=seed,
        verbose=not quiet and sys.stderr.isatty(),
    )
    held = f", {split['holdout']['n_held_out']} held out" if split["holdout"] else ""
    note(
        quiet,
        f"training on {len(train_set)} samples of class {label!r}{held}, "
        f"views {clf.views or dataset.view_names}",
    )
    clf.fit(train_set)
    view_sources = _view_sources(train_set)
    metadata = {"normal": [label], "source": src, "view_sources": view_sources, **split}
    if "resize" in plan.options:  # an image source: score, evaluate and report read new data alike
        metadata["resize"] = plan.options["resize"]
    clf.save(out, metadata=metadata)
    hint = (
        " scores; -p threshold=holdout takes it from held-out normals"
        if clf.threshold_source_ == "train"
        else ""
    )
    note(
        quiet, f"threshold {clf.threshold_:.6g} (from {clf.threshold_source_}{hint}); model written to {out}"
    )


@contextmanager
def _csv_output(out: Path) -> Iterator[IO[str]]:
    """Open what ``mmocc score`` writes: standard output for ``-``, else ``out``, written atomically."""
    from mmocc.utils.files import atomic_open

    if out == STDOUT:
        yield sys.stdout
        return
    with atomic_open(out, "w", newline="", encoding="utf-8") as handle:
        yield handle


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@score_out_option
@data_option
@batch_option
@cluster_options
@common()
def score(
    model: Path,
    src: str,
    out: Path,
    data_options: tuple[str, ...],
    batch_size: int,
    engine: str,
    scheduler: str | None,
    workers: int | None,
    shards: int | None,
    restart: bool,
    quiet: bool,
    device: str,
) -> None:
    """Score every sample of SRC with MODEL and write one CSV row per sample.

    SRC may be unlabelled (new data): a manifest without a label column, a
    folder root/<sample_id>/<view>.png, or pairs:DIR_A,DIR_B. Columns:
    sample_id, label (when SRC has labels), score, is_anomaly (score above
    the model's threshold), then for a model of score combined: fired (global:
    another object; local: a defect on this object) and part_global,
    part_local (each part's standardized score; score is their mean), then
    one standardized score_<view> column per
    view where the model's rule scores each view (patch, recon, or knn with a
    per-view bank, as in the default preset; the highest names the camera
    that saw the anomaly), then path_<view>, the file each view was read
    from. The image size and colour mode are read from the model. Samples
    are scored in chunks and written as they go; the file appears only when
    complete (--out - streams the rows to standard output instead).

    --engine dask scores on a Dask cluster instead (a local one, or
    --scheduler ADDRESS): --out is then a folder where the workers write one
    part per shard and the merged scores.csv equals this command's CSV; a
    rerun resumes, skipping the finished shards.
    """
    if engine == "dask":
        score_on_cluster(
            model, src, out, data_options, batch_size, quiet, device, scheduler, workers, shards, restart
        )
        return
    from mmocc.deploy.batch import plan_for_model, score_chunks, score_columns

    clf, plan = plan_for_model(model, src, parse_data_options(data_options), device)
    n_samples = n_anomalies = 0
    with _csv_output(out) as handle:
        writer = csv.writer(handle)
        for i, (chunk, scores, by_view, parts) in enumerate(score_chunks(clf, plan, batch_size, quiet)):
            columns = score_columns(chunk, scores, clf.threshold_, by_view, parts)
            if i == 0:
                writer.writerow(list(columns))
            n_samples += len(chunk)
            n_anomalies += sum(columns["is_anomaly"])
            writer.writerows(zip(*columns.values(), strict=True))
    where = "standard output" if out == STDOUT else out
    note(quiet, f"scored {n_samples} samples, {n_anomalies} above the threshold; written to {where}")


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the model's whole JSON header.")
@common(device=False)
def info(model: Path, as_json: bool, quiet: bool) -> None:
    """Show what MODEL (a model file or an ONNX export) learned and expects.

    The normal class and data source it was trained on, views with shapes
    and sources, threshold and where it comes from, training set (size,
    held-out share, fingerprint), creation time, versions and the resolved
    hyper-parameters that its score and backbone read (those that were not
    used are named apart: a pretrained backbone trains no autoencoder).
    --json prints the whole header, machine-readable, plus the lists
    used_params and unused_params.
    """
    from mmocc.cli.model_info import info_lines, onnx_info_lines, used_settings
    from mmocc.export.runtime import OnnxDetector, is_onnx_file

    if is_onnx_file(model):
        export = OnnxDetector.load(model).info_
        if as_json:
            fingerprints = export.train_fingerprints
            specs = [spec.to_dict() for spec in export.view_specs]
            record = {**dataclasses.asdict(export), "view_specs": specs}
            record["train_fingerprints"] = None if fingerprints is None else len(fingerprints)
            click.echo(json.dumps(record, indent=2))
        else:
            click.echo("\n".join(onnx_info_lines(model, export)))
        return
    from mmocc.io.format import read_config

    config, _ = read_config(model)
    used = used_settings(config["params"])
    config = {**config, "used_params": used, "unused_params": [k for k in config["params"] if k not in used]}
    if as_json:
        click.echo(json.dumps(config, indent=2))
        return
    click.echo("\n".join(info_lines(model, config)))
