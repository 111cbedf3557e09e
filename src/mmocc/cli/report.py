"""The ``mmocc report`` command: a self-contained HTML report of a model's scores on a data source.

numpy, torch and the estimators are imported inside the command body, so
``mmocc --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from mmocc.cli.options import SRC_HELP, STDOUT, common, data_option, note, out_option


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
@common()
def report(
    model: Path,
    src: str,
    out: Path,
    top: int,
    near: int,
    title: str | None,
    data_options: tuple[str, ...],
    quiet: bool,
    device: str,
) -> None:
    """Score every sample of SRC with MODEL; write one self-contained HTML page of the results.

    The page holds a header (model, preset and score rule, threshold,
    counts, data source), a histogram of the scores with the threshold
    marked, cards of the --top highest-scoring samples above the threshold
    and of the --near samples nearest below it (every image view, with the
    anomaly map blended over it where the model's score rule has maps: patch,
    recon), and a table of every sample, sorted by clicking a header. It
    embeds its images and makes no network request; open it in any browser.
    The image size and colour mode are read from the model.
    """
    from mmocc.cli.commands import _load_for_model
    from mmocc.evaluation.html_report import build_report, write_report

    clf, dataset = _load_for_model(model, src, data_options, device)
    html = build_report(clf, dataset, top_k=top, n_near=near, title=title, source=src, model_path=model)
    if out == STDOUT:
        click.echo(html, nl=False)
    else:
        write_report(out, html)
    note(quiet, f"report of {len(dataset)} samples written to {'standard output' if out == STDOUT else out}")
