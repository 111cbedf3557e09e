"""Export a fitted detector to ONNX, and write the file only once the graph is proved to agree with the model.

:func:`export_onnx` traces :class:`~mmocc.export.graph.DetectorGraph` with
:func:`torch.onnx.export` (opset :data:`OPSET`, a dynamic batch axis on
every input and output), writes the model's facts into the ONNX
``metadata_props`` (:mod:`mmocc.export.metadata`), runs the graph with ONNX
Runtime through :class:`~mmocc.export.runtime.OnnxDetector`, the class that
scores with it later, and compares every output with the PyTorch model's
on the same samples (:mod:`mmocc.export.parity`). Only an export that
passes is written, atomically, with the parity report in its metadata.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np

from mmocc.export.heads import RUN_BYTES
from mmocc.export.parity import ATOL, RTOL, ParityReport, compare
from mmocc.utils.text import first_line

OPSET = 18
"""The ONNX opset of exports."""

MAX_SAMPLES_PER_RUN = 256
"""The most samples one run of the graph is given, however small its searches."""

PROTOBUF_LIMIT = 2**31 - 1
"""ONNX files without external data hold at most this many bytes."""


class ParityError(ValueError):
    """An export whose outputs disagree with the model's; it carries the :class:`ParityReport`."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__(
            f"the ONNX graph disagrees with the model, so nothing was written\n{report.summary()}"
        )
        self.report = report


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError('exporting to ONNX needs onnx and onnxruntime: pip install "mmocc[onnx]"') from None
    return onnx


def _trace(graph: Any, inputs: list[str]) -> bytes:
    """Trace the graph into ONNX bytes, with a dynamic batch axis everywhere."""
    import torch

    from mmocc.export.graph import example_inputs

    outputs = graph.flat_output_names()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's advice on Python values and deprecations
        try:
            torch.onnx.export(
                graph,
                example_inputs(graph.specs, 2),
                buffer,  # type: ignore[arg-type]  # a file object is accepted, though not in the hints
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in [*inputs, *outputs]},
                opset_version=OPSET,
                dynamo=False,
            )
        except Exception as exc:  # the exporter raises many types; name the step and the cause
            raise ValueError(f"cannot export this model to ONNX: {first_line(exc)}") from None
    return buffer.getvalue()


def _reference(clf: Any, views: dict[str, np.ndarray], outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Return the PyTorch model's float32 outputs on ``views``, named as the graph names its outputs.

    The graph computes in float32, so a model that scores under bf16 autocast
    (``amp=True``) is compared as it scores without it.
    """
    amp = clf.amp
    clf.amp = False
    try:
        scores, by_view, parts = clf.decision_function_details(views)
        maps = clf.anomaly_maps(views) if outputs["maps"] else {}
    finally:
        clf.amp = amp
    out = {outputs["score"]: scores, outputs["is_anomaly"]: scores > clf.threshold_}
    out.update({name: by_view[view] for view, name in outputs["views"].items()})
    out.update({name: parts[part] for part, name in outputs["parts"].items()})
    out.update({name: maps[view] for view, name in outputs["maps"].items()})
    return out


def export_onnx(
    clf: Any,
    path: str | os.PathLike[str],
    *,
    check: Any = None,
    check_origin: str = "check data",
    rtol: float = RTOL,
    atol: float = ATOL,
    probes: int = 48,
) -> ParityReport:
    """Export a fitted detector to one ONNX file, checked for parity with the model first.

    The graph takes one input per view, named after it, with a dynamic batch
    axis: uint8 ``(n, C, H, W)`` for a view fitted on uint8, float64 for any
    other (its values are scaled in float64 as in the model). Its outputs are
    ``score`` (float64), ``is_anomaly`` (bool: score above the threshold),
    ``score_<view>`` and ``part_<part>`` where the rule has them, and
    ``map_<view>`` (float32, at the view's size) where it has maps. Memory
    banks are initializers; searches are exact (MatMul + TopK, then the
    candidates re-measured), also for a model fitted with an approximate search.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector.
    path : path-like
        The ``.onnx`` file to write (atomically).
    check : dict of str to array-like, or dataset, optional
        Samples for the parity check; by default :func:`mmocc.export.probes.probe_views`.
    check_origin : str, default "check data"
        Where ``check`` comes from, for the report.
    rtol, atol : float
        Tolerances of the check (:func:`mmocc.export.parity.compare`).
    probes : int, default 48
        Samples made when ``check`` is None.

    Returns
    -------
    ParityReport
        The check that passed (also stored in the file's metadata).

    Raises
    ------
    ParityError
        When the graph disagrees with the model; no file is written.
    ValueError
        For a model that cannot be expressed in ONNX, named with the reason.
    TypeError
        For another estimator than :class:`~mmocc.detectors.multimodal.MultimodalOCC`.
    ImportError
        Without onnx and onnxruntime.
    """
    from sklearn.utils.validation import check_is_fitted

    from mmocc.detectors.multimodal import MultimodalOCC
    from mmocc.export.graph import DetectorGraph
    from mmocc.export.metadata import export_metadata
    from mmocc.export.probes import probe_views
    from mmocc.export.runtime import OnnxDetector, require_onnxruntime
    from mmocc.utils.files import atomic_open

    if not isinstance(clf, MultimodalOCC):
        raise TypeError(f"only a MultimodalOCC exports to ONNX, not a {type(clf).__name__}")
    check_is_fitted(clf, "threshold_")
    onnx = _require_onnx()
    require_onnxruntime()
    graph = DetectorGraph(clf)
    inputs = {spec.name: spec.name for spec in clf.view_specs_}
    proto = onnx.load_from_string(_trace(graph, list(inputs)))
    per_run = int(np.clip(RUN_BYTES // max(1, graph.bytes_per_sample), 1, MAX_SAMPLES_PER_RUN))

    def serialized(parity: dict[str, Any]) -> bytes:
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, export_metadata(clf, inputs, graph.outputs, per_run, parity))
        data: bytes = proto.SerializeToString()
        if len(data) > PROTOBUF_LIMIT:
            raise ValueError(
                "cannot export this model to ONNX: its memory banks exceed the 2 GB of one ONNX file"
            )
        return data

    if check is None:
        check, check_origin = probe_views(clf, probes), "probes made from the model's training statistics"
    detector = OnnxDetector.from_bytes(serialized({}), os.fspath(path))
    views = detector.checked_views(check)
    if not len(next(iter(views.values()))):
        raise ValueError("the parity check needs at least one sample; the check data holds none")
    report = compare(
        _reference(clf, views, graph.outputs),
        detector.outputs(views),
        graph.outputs,
        clf.threshold_,
        origin=check_origin,
        rtol=rtol,
        atol=atol,
    )
    if not report.passed:
        raise ParityError(report)
    data = serialized(report.to_dict())
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return report
