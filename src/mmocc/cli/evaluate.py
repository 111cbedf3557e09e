"""The ``mmocc evaluate`` command: image metrics, the threshold's fit to held-out normals, pixel metrics.

numpy and the estimators are imported inside the command bodies, so
``mmocc --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from mmocc.cli.options import SRC_HELP, batch_option, common, data_option, note, parse_data_options


def _normal_labels(clf: Any, dataset: Any, normal: tuple[str, ...]) -> list[Any]:
    """Return the normal class(es): from --normal, else from the model file."""
    from mmocc.data.sources import find_label

    wanted = list(normal) or list(clf.metadata_.get("normal") or [])
    if not wanted:
        raise click.UsageError(
            "the model file does not record its normal class (not written by `mmocc train`): give --normal"
        )
    return [find_label(dataset, label) for label in wanted]


class _TrainingFilter:
    """Leaves the training samples out of a stream of chunks (unless ``include``) and counts them."""

    def __init__(self, clf: Any, include: bool) -> None:
        self.clf = clf
        self.include = include
        self.n_seen = 0

    def __call__(self, chunks: Iterable[Any]) -> Iterator[Any]:
        """Yield each chunk without its training samples (all of it when ``include``)."""
        for chunk in chunks:
            seen = self.clf.seen_in_training(chunk) if self.clf.train_fingerprints_ is not None else None
            if seen is None or not seen.any():
                yield chunk
                continue
            self.n_seen += int(seen.sum())
            yield chunk if self.include else chunk[~seen]

    def note(self) -> str:
        """Say what was done with the training samples, once the stream is consumed."""
        if self.clf.train_fingerprints_ is None:
            return "the model file records no training samples (older mmocc): cannot leave them out"
        if not self.n_seen:
            return "none of these samples was used in training"
        if self.include:
            return f"warning: {self.n_seen} of these samples were used in training; metrics are optimistic"
        return f"left out {self.n_seen} samples the model was trained on"


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@click.option(
    "--normal",
    multiple=True,
    metavar="LABEL",
    help="The normal class (repeat for several); every other class is an anomaly. Default: the class the "
    "model was trained on, as its file records.",
)
@click.option(
    "--include-training",
    is_flag=True,
    help="Keep the samples the model was trained on (recognised by content); metrics are then optimistic.",
)
@click.option(
    "--pixel-resolution",
    type=click.Choice(["loaded", "source"]),
    default="loaded",
    show_default=True,
    help="Where pixel metrics compare anomaly maps with masks: at the loaded size (masks resized keeping "
    "every defect cell: optimistic about tiny defects), or at each image's source size, maps brought "
    "back through the resize mode, against the original mask files (pixels a crop cut away count in "
    "neither class).",
)
@data_option
@batch_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@common()
def evaluate(
    model: Path,
    src: str,
    normal: tuple[str, ...],
    include_training: bool,
    pixel_resolution: str,
    data_options: tuple[str, ...],
    batch_size: int,
    as_json: bool,
    quiet: bool,
    device: str,
) -> None:
    """Print the metrics of MODEL on the labelled samples of SRC it was not trained on.

    Samples the model was trained on are recognised by content and left out
    (--include-training keeps them). When no normal sample is left, the
    command says so: train with --holdout, or evaluate on other data.
    """
    import numpy as np

    from mmocc.deploy.batch import plan_for_model
    from mmocc.evaluation.localization import threshold_note
    from mmocc.evaluation.metrics import evaluate as compute_metrics

    clf, plan = plan_for_model(model, src, parse_data_options(data_options), device)
    known = plan.require_labels("evaluate")
    labels = _normal_labels(clf, plan, normal)
    normal_values = np.asarray(labels, dtype=known.dtype)
    leave_out = _TrainingFilter(clf, include_training)
    chunks = leave_out(plan.chunks(batch_size))
    pixels = _pixel_evaluation(clf, pixel_resolution, plan.options)
    y, scores = _score_labelled(clf, chunks, normal_values, batch_size, quiet, pixels)
    n_seen, seen_note = leave_out.n_seen, leave_out.note()
    _require_both_classes(y, seen_note, labels, src)
    metrics = compute_metrics(y, scores, clf.threshold_)
    by_pixel = pixels.metrics(labels) if pixels is not None and pixels.views else {}
    tau_note = threshold_note(scores, y, clf.threshold_, clf.contamination)
    summary = {
        "n_samples": len(y),
        "n_normal": int((y == 0).sum()),
        "n_anomalies": int(y.sum()),
        "n_training_samples": n_seen,
        "training_samples_included": bool(include_training and n_seen),
    }
    if tau_note:
        click.echo(tau_note, err=True)
    if as_json:
        extra = {"pixel_resolution": pixel_resolution, "pixel_metrics": by_pixel} if by_pixel else {}
        record = {**summary, "normal": labels, "threshold": clf.threshold_, **metrics, **extra}
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(seen_note, err=True) if include_training and n_seen else note(quiet, seen_note)
    click.echo(
        f"{summary['n_samples']} samples ({summary['n_normal']} normal of {labels}, "
        f"{summary['n_anomalies']} anomalies), threshold {clf.threshold_:.6g} (from {clf.threshold_source_})"
    )
    width = max(map(len, metrics))
    for name, value in metrics.items():
        click.echo(f"{name:<{width}}  {value:.4f}")
    _echo_pixel_metrics(by_pixel, pixel_resolution)


def _require_both_classes(y: Any, seen_note: str, labels: list[Any], src: str) -> None:
    """Refuse to evaluate without held-out normal samples, or without anomalies, saying which is missing."""
    if not (y == 0).any():
        raise click.ClickException(
            f"no held-out normal samples: {seen_note}, and no normal sample of {labels} is left in {src}; "
            "train with --holdout 0.34 to keep some out, or evaluate on other data"
        )
    if not y.any():
        raise click.ClickException(
            f"no anomalies in {src}: all {len(y)} samples evaluated are of the normal class {labels}, and "
            "ROC AUC, precision and recall need samples of other classes; evaluate on data that has some "
            "(or give fewer --normal classes), or use `mmocc score` to score it"
        )


def _pixel_evaluation(clf: Any, resolution: str, options: dict[str, Any]) -> Any:
    """Return the PixelEvaluation of a model that gives anomaly maps (None otherwise), at ``resolution``."""
    from mmocc.data.images import DEFAULT_RESIZE
    from mmocc.evaluation.localization import PixelEvaluation

    if not clf.has_anomaly_maps:
        return None
    return PixelEvaluation(clf, resolution=resolution, resize=options.get("resize", DEFAULT_RESIZE))


def _score_labelled(
    clf: Any, chunks: Iterable[Any], normal_values: Any, batch_size: int, quiet: bool, pixels: Any
) -> tuple[Any, Any]:
    """Score labelled chunks: 0/1 labels and scores; ``pixels`` (if any) collects maps against masks."""
    import numpy as np

    from mmocc.deploy.batch import score_chunks

    ys, parts = [], []
    for chunk, part, _, _ in score_chunks(clf, chunks, batch_size, quiet):
        ys.append((~np.isin(chunk.labels, normal_values)).astype(np.int64))
        parts.append(part)
        if pixels is not None:
            pixels.add(chunk, chunk.labels)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    return y, np.concatenate(parts) if parts else np.zeros(0)


_RESOLUTION_NOTES = {
    "loaded": "at the loaded resolution (masks resized to it keeping every defect cell)",
    "source": "at the source resolution (maps brought back to each image's size, original masks)",
}


def _echo_pixel_metrics(by_pixel: dict[str, dict[str, dict[str, float]]], resolution: str) -> None:
    """Print which resolution the pixel metrics were computed at, then one line per view and defect type."""
    if by_pixel:
        click.echo(f"pixel metrics {_RESOLUTION_NOTES[resolution]}:")
    for view, rows in by_pixel.items():
        click.echo(f"pixel metrics, {view} (ROC AUC, AUPRO up to FPR 0.3):")
        for kind, row in rows.items():
            click.echo(
                f"  {kind:<12} pixel_roc_auc {row['pixel_roc_auc']:.4f}  aupro {row['aupro']:.4f}  "
                f"({row['n_images']} images, {row['n_regions']} regions)"
            )
