"""``mmocc export``: the whole detector as one ONNX file, written only when it agrees with the model.

torch, onnx and ONNX Runtime are imported inside the command body.
"""

from __future__ import annotations

from pathlib import Path

import click

from mmocc.cli.options import SRC_HELP, common, data_option, note, out_option, parse_data_options

_RTOL, _ATOL = 1e-4, 1e-5  # mmocc.export.parity's defaults, without importing it for --help


@click.command("export")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_option("The .onnx file to write; written only when the parity check passes.")
@click.option(
    "--check-data",
    "check_src",
    metavar="SRC",
    default=None,
    help="Check parity on samples of SRC instead of probes made from the model's training statistics. "
    + SRC_HELP,
)
@click.option(
    "--check-samples",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="How many samples of --check-data to compare, evenly spaced over it.",
)
@click.option(
    "--rtol", type=click.FloatRange(min=0.0), default=_RTOL, show_default=True, help="Relative tolerance."
)
@click.option(
    "--atol", type=click.FloatRange(min=0.0), default=_ATOL, show_default=True, help="Absolute tolerance."
)
@data_option
@common()
def export(
    model: Path,
    out: Path,
    check_src: str | None,
    check_samples: int,
    rtol: float,
    atol: float,
    data_options: tuple[str, ...],
    quiet: bool,
    device: str,
) -> None:
    """Export MODEL to ONNX, to score it without PyTorch (mmocc score OUT.onnx, or ONNX Runtime).

    The graph holds the whole detector: input scaling, the encoders (or the
    pretrained backbone), the scoring rule with its memory banks, the
    standardization, the view combination, the threshold, and the anomaly
    maps. Inputs: one per view, named after it, uint8 (n, C, H, W) for images
    fitted on uint8, else float64, with a dynamic batch axis. Outputs: score,
    is_anomaly, and score_<view>, part_<part>, map_<view> where the model's
    rule has them. The file's metadata holds the views, the threshold and
    where it comes from, the hyper-parameters, the mmocc version, the
    training fingerprint and the parity report.

    Before writing, the graph is run with ONNX Runtime beside the PyTorch
    model on the same samples (--check-data, or probes made from the model's
    training statistics): every score, view score, part score and map must
    agree within --rtol and --atol, and every is_anomaly decision but ties at
    the threshold. Otherwise nothing is written and the command fails with
    the report.
    """
    from mmocc.deploy.batch import load_detector, model_data_options
    from mmocc.export.writer import export_onnx

    clf = load_detector(model, device)
    if not hasattr(clf, "model_"):
        what = "an ONNX export already" if type(clf).__name__ == "OnnxDetector" else f"a {type(clf).__name__}"
        raise click.BadParameter(
            f"{model} is {what}; only a MultimodalOCC model file exports", param_hint="MODEL"
        )
    check, origin = None, "probes"
    if check_src is not None:
        from mmocc.data.sources import parse_source
        from mmocc.data.streaming import plan_source

        source = parse_source(check_src)
        plan = plan_source(source, **model_data_options(clf, source, parse_data_options(data_options)))
        if not len(plan):
            raise click.BadParameter(f"{check_src} holds no samples", param_hint="--check-data")
        import numpy as np

        picked = np.unique(np.linspace(0, len(plan) - 1, min(check_samples, len(plan))).round().astype(int))
        check = plan.subset(picked).load()  # spread over the source: normal and anomalous samples alike
        origin = f"{len(picked)} of the {len(plan)} samples of {check_src}, evenly spaced"
    report = export_onnx(clf, out, check=check, check_origin=origin, rtol=rtol, atol=atol)
    note(quiet, report.summary())
    note(quiet, f"written to {out}")
