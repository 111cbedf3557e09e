"""The Markdown report of an experiment (``table.md``), in the layout of the paper's Table I."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmocc.evaluation.config import ExperimentConfig

METRIC_LABELS: dict[str, str] = {
    "anomaly_recall": "Recall",
    "p_at_n": "P@n",
    "roc_auc": "ROC AUC",
    "normal_recall": "Normal recall",
    "average_precision": "AP",
    "f1": "F1",
    "fit_seconds": "Fit (s)",
    "score_seconds": "Score (s)",
}
"""Column titles of ``table.md``."""

_Lookup = dict[tuple[Any, ...], float]


def _cell(values: list[float]) -> str:
    """Mean, and sample standard deviation when there are several values."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _row_cells(
    lookup: _Lookup,
    size: Any,
    normals: list[str],
    seeds: list[int],
    models: list[str],
    metrics: tuple[str, ...],
) -> list[str]:
    """Cells of one table row; with several normals, each seed's mean over them."""
    cells = []
    for model in models:
        for metric in metrics:
            per_seed = [
                float(np.mean([lookup[size, normal, model, seed, metric] for normal in normals]))
                for seed in seeds
            ]
            cells.append(_cell(per_seed))
    return cells


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    """Render a Markdown table, the first column left-aligned and the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _preamble(cfg: ExperimentConfig, data_summary: Mapping[str, Any]) -> list[str]:
    """Title, description and the sentence describing data, protocol and seeds."""
    split, seeds = cfg.split, list(cfg.seeds)
    protocol = (
        f"normal samples with {split.key} < {split.below} train"
        if split.kind == "metadata"
        else f"{split.kind} split, {split.train_fraction:g} of the normal samples train"
    )
    spread = "mean ± standard deviation over" if len(seeds) > 1 else "one seed:"
    return [
        f"# {cfg.name}",
        "",
        *([cfg.description, ""] if cfg.description else []),
        f"Data: `{data_summary['source']}` ({data_summary['n_samples']} samples); {protocol}; "
        f"{spread} seeds {', '.join(map(str, seeds))}. "
        "Recall = anomaly recall at the threshold; Normal recall = fraction of test normals at or below it.",
        "",
    ]


def markdown_report(
    cfg: ExperimentConfig,
    rows: list[dict[str, Any]],
    normals_by_size: Mapping[int | None, list[Any]],
    data_summary: Mapping[str, Any],
) -> str:
    """Render the results in the layout of the paper's Table I.

    One table per input size: a row per normal class and an Average row,
    a column per model and metric (``cfg.table_metrics``), each cell the mean
    +- sample standard deviation over seeds. The Average row averages over
    classes within each seed first, so its spread is over seeds too. With
    several sizes a last table gives the Average row of each size.

    Parameters
    ----------
    cfg : ExperimentConfig
        The config (models, seeds, metrics, split).
    rows : list of dict
        Tidy results.
    normals_by_size : mapping
        The normal classes of each size, in table order.
    data_summary : mapping
        ``source`` and ``n_samples`` of the data.

    Returns
    -------
    str
        The Markdown document.
    """
    lookup = {
        (str(row["size"]), row["normal"], row["model"], row["seed"], row["metric"]): row["value"]
        for row in rows
    }
    models, seeds, metrics = list(cfg.models), list(cfg.seeds), cfg.table_metrics
    header_cells = [f"{model} {METRIC_LABELS[metric]}" for model in models for metric in metrics]
    lines = _preamble(cfg, data_summary)
    averages = []
    for size, normals in normals_by_size.items():
        key_size = "" if size is None else str(size)
        names = [str(normal) for normal in normals]
        if len(normals_by_size) > 1:
            lines += [f"## Input size {size}", ""]
        elif size is not None:
            lines += [f"Input size {size}.", ""]
        body = [[name, *_row_cells(lookup, key_size, [name], seeds, models, metrics)] for name in names]
        average = _row_cells(lookup, key_size, names, seeds, models, metrics)
        averages.append([str(size), *average])
        body.append(["**Average**", *average])
        lines += [_markdown_table(["Normal class", *header_cells], body)]
    if len(normals_by_size) > 1:
        lines += [
            "## Average over classes by input size",
            "",
            _markdown_table(["Input size", *header_cells], averages),
        ]
    return "\n".join(lines)
