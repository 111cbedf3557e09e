"""The Markdown report of an experiment (``table.md``): the paper's Table I, one table per metric."""

from __future__ import annotations

import textwrap
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
"""Table titles of ``table.md``, one table per metric."""

_Lookup = dict[tuple[Any, ...], float]
_Shares = Mapping[tuple[Any, str], float]

_SHARE_COLUMN = "Anomaly share"
_P_AT_N_NOTE = (
    "P@n = precision among the n highest scores, n = the number of test anomalies. A random ranking "
    "gets P@n ≈ the share of anomalies in the test set{where}, so only P@n above that share shows a "
    "useful ranking."
)
_WIDTH = 100


def _cell(values: list[float]) -> str:
    """Mean, and sample standard deviation when there are several values."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _cells(
    lookup: _Lookup, size: str, normals: list[str], seeds: list[int], models: list[str], metric: str
) -> list[str]:
    """Return one cell per model; with several normals, each seed's mean over them first."""
    return [
        _cell(
            [
                float(np.mean([lookup[size, normal, model, seed, metric] for normal in normals]))
                for seed in seeds
            ]
        )
        for model in models
    ]


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    """Render a Markdown table, the first column left-aligned and the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _prose(text: str) -> str:
    """Wrap a paragraph to short lines (Markdown joins them again)."""
    return textwrap.fill(text, _WIDTH, break_long_words=False, break_on_hyphens=False)


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
        _prose(
            f"Data: `{data_summary['source']}` ({data_summary['n_samples']} samples); {protocol}; "
            f"{spread} seeds {', '.join(map(str, seeds))}. One table per metric: a row per normal "
            "class, a column per model. Recall = anomaly recall at the threshold; Normal recall = "
            "fraction of test normals at or below it."
        ),
        "",
    ]


def _p_at_n_note(with_shares: bool) -> str:
    """Return the paragraph under a P@n table: the P@n of a random ranking."""
    where = f" (column {_SHARE_COLUMN}, mean over seeds)" if with_shares else ""
    return _prose(_P_AT_N_NOTE.format(where=where)) + "\n"


def _metric_rows(
    lookup: _Lookup,
    cfg: ExperimentConfig,
    metric: str,
    size: Any,
    names: list[str],
    shares: _Shares | None,
) -> list[list[str]]:
    """Return the rows of one metric's table at one size: a row per normal class, then the Average row."""
    key_size, models, seeds = "" if size is None else str(size), list(cfg.models), list(cfg.seeds)
    rows = [[name, *_cells(lookup, key_size, [name], seeds, models, metric)] for name in names]
    rows.append(["**Average**", *_cells(lookup, key_size, names, seeds, models, metric)])
    if metric == "p_at_n" and shares is not None:
        values = [shares[size, name] for name in names]
        for row, share in zip(rows, [*values, float(np.mean(values))], strict=True):
            row.append(f"{share:.3f}")
    return rows


def _section(
    level: str, metric: str, header: list[str], rows: list[list[str]], with_shares: bool
) -> list[str]:
    """Return a metric's heading and table and, under a P@n table, the note on its chance level."""
    p_at_n = metric == "p_at_n"
    header = [*header, _SHARE_COLUMN] if p_at_n and with_shares else header
    section = [f"{level} {METRIC_LABELS[metric]}", "", _markdown_table(header, rows)]
    return [*section, _p_at_n_note(with_shares)] if p_at_n else section


def markdown_report(
    cfg: ExperimentConfig,
    rows: list[dict[str, Any]],
    normals_by_size: Mapping[int | None, list[Any]],
    data_summary: Mapping[str, Any],
    anomaly_shares: _Shares | None = None,
) -> str:
    """Render the results as the paper's Table I, one table per metric.

    For each metric of ``cfg.table_metrics`` a table with a row per normal
    class and an Average row, and a column per model; each cell is the mean
    +- sample standard deviation over seeds. The Average row averages over
    classes within each seed first, so its spread is over seeds too. A note
    under the P@n table gives the P@n of a random ranking (the share of
    anomalies in the test set, as an extra column when ``anomaly_shares`` is
    given). With several input sizes, each size has its section and a last
    section gives the Average rows of every size.

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
    anomaly_shares : mapping of (size, normal) to float, optional
        The share of anomalies in the test set of each task (the normal class
        as a string), averaged over seeds.

    Returns
    -------
    str
        The Markdown document.
    """
    lookup = {
        (str(row["size"]), row["normal"], row["model"], row["seed"], row["metric"]): row["value"]
        for row in rows
    }
    models, with_shares = list(cfg.models), anomaly_shares is not None
    several = len(normals_by_size) > 1
    level = "###" if several else "##"
    lines = _preamble(cfg, data_summary)
    averages: dict[str, list[list[str]]] = {metric: [] for metric in cfg.table_metrics}
    for size, normals in normals_by_size.items():
        if several:
            lines += [f"## Input size {size}", ""]
        elif size is not None:
            lines += [f"Input size {size}.", ""]
        names = [str(normal) for normal in normals]
        for metric in cfg.table_metrics:
            table = _metric_rows(lookup, cfg, metric, size, names, anomaly_shares)
            averages[metric].append([str(size), *table[-1][1:]])
            lines += _section(level, metric, ["Normal class", *models], table, with_shares)
    if several:
        lines += ["## Average over classes by input size", ""]
        for metric, table in averages.items():
            lines += _section("###", metric, ["Input size", *models], table, with_shares)
    return "\n".join(lines)
