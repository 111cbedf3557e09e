"""The ``mmocc report`` command: a self-contained HTML report of a model's scores on a data source.

numpy, torch and the estimators are imported inside the command body, so
``mmocc --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

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

if TYPE_CHECKING:
    import numpy as np

    from mmocc.evaluation.html import ScoredSamples


def _score_all(clf: Any, plan: Any, batch_size: int, quiet: bool) -> ScoredSamples:
    """Score a source chunk by chunk; keep every sample's id, label, files and scores, not its images."""
    import numpy as np

    from mmocc.deploy.batch import score_chunks
    from mmocc.evaluation.html import ScoredSamples

    ids, labels, totals, n_seen = [], [], [], 0
    paths: dict[str, list[np.ndarray]] = {}
    views: dict[str, list[np.ndarray]] = {}
    parts: dict[str, list[np.ndarray]] = {}
    for chunk, total, by_view, by_part in score_chunks(clf, plan, batch_size, quiet):
        if clf.train_fingerprints_ is not None:
            n_seen += int(clf.seen_in_training(chunk).sum())
        ids.append(chunk.ids)
        labels.append(chunk.labels)
        totals.append(np.asarray(total, dtype=np.float64))
        for view, files in chunk.paths.items():
            paths.setdefault(view, []).append(files)
        for view, values in by_view.items():
            views.setdefault(view, []).append(values)
        for part, values in by_part.items():
            parts.setdefault(part, []).append(values)
    return ScoredSamples(
        ids=np.concatenate(ids),
        labels=None if labels[0] is None else np.concatenate(labels),
        paths={view: np.concatenate(files) for view, files in paths.items()},
        total=np.concatenate(totals),
        by_view={view: np.concatenate(values) for view, values in views.items()},
        threshold=float(clf.threshold_),
        n_seen=None if clf.train_fingerprints_ is None else n_seen,
        parts={part: np.concatenate(values) for part, values in parts.items()},
    )


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "src", required=True, metavar="SRC", help=SRC_HELP)
@out_option("HTML file to write.", stdout=True)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="Cards of the highest-scoring samples above the threshold.",
)
@click.option(
    "--near",
    type=click.IntRange(min=0),
    default=12,
    show_default=True,
    help="Cards of the samples nearest below the threshold.",
)
@click.option("--title", help="Page title.  [default: mmocc report: <model file name>]")
@data_option
@batch_option
@common()
def report(
    model: Path,
    src: str,
    out: Path,
    top: int,
    near: int,
    title: str | None,
    data_options: tuple[str, ...],
    batch_size: int,
    quiet: bool,
    device: str,
) -> None:
    """Score every sample of SRC with MODEL; write one self-contained HTML page of the results.

    The page holds a header (model, preset and score rule, threshold,
    counts, data source), a histogram of the scores with the threshold
    marked (bars stacked and coloured by label when SRC has labels), cards
    of the --top highest-scoring samples above the threshold and of the
    --near samples nearest below it (every image view, with the anomaly map
    blended over it where the model's score rule has maps: patch, recon,
    combined; for score combined, a line naming the part that fired: global,
    another object, or local, a defect on this object;
    where SRC has ground-truth masks, each defect's outline is drawn in cyan
    over the image and the map), and a table of every sample, sorted by
    clicking a header. It embeds its images and makes no network request;
    open it in any browser. The image size and colour mode are read from the
    model. Samples are decoded and scored in chunks; only the scores are
    kept, and the samples shown as cards are decoded again, with their masks.
    """
    import numpy as np

    from mmocc.deploy.batch import plan_for_model
    from mmocc.evaluation.html import render_report, write_report

    clf, plan = plan_for_model(model, src, parse_data_options(data_options), device)
    scored = _score_all(clf, plan, batch_size, quiet)
    chosen = {sample_id: row for row, sample_id in enumerate(plan.ids.tolist())}

    def load(indices: np.ndarray) -> Any:  # decode again only the samples shown as cards
        return plan.subset(
            np.asarray([chosen[scored.ids[i]] for i in indices.tolist()], dtype=np.intp)
        ).load()

    html = render_report(clf, scored, load, top_k=top, n_near=near, title=title, source=src, model_path=model)
    if out == STDOUT:
        click.echo(html, nl=False)
    else:
        write_report(out, html)
    n = len(scored.total)
    note(quiet, f"report of {n} samples written to {'standard output' if out == STDOUT else out}")
