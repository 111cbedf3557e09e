"""What an mmocc ONNX file says about itself: its ``metadata_props``, written at export and checked at load.

Every value is a string (JSON where structured) under a key starting with
``mmocc.``. :func:`export_metadata` builds them from a fitted detector and
:func:`read_metadata` checks them back into an :class:`ExportInfo`,
refusing a file that is not an mmocc export, is of a newer format, or lacks
a key. This module imports neither torch nor onnx.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmocc.data.fingerprints import set_fingerprint
from mmocc.data.inputs import ViewSpec

FORMAT = "mmocc-onnx"
"""The value of ``mmocc.format`` in every export."""

FORMAT_VERSION = 1
"""The export format this mmocc writes and reads (``mmocc.format_version``)."""

_REQUIRED = (
    "format",
    "format_version",
    "version",
    "views",
    "inputs",
    "preprocess",
    "outputs",
    "threshold",
    "threshold_source",
    "contamination",
    "preset",
    "params",
    "metadata",
    "train_fingerprint",
    "samples_per_run",
    "parity",
)


@dataclass(frozen=True)
class ExportInfo:
    """The checked ``metadata_props`` of an mmocc ONNX file.

    Attributes
    ----------
    version : str
        The mmocc version that wrote it.
    view_specs : list of ViewSpec
        The views, in the graph's input order: names, kinds, shapes, dtypes.
    inputs : dict of str to str
        The graph input name of each view.
    preprocess : dict of str to dict
        How to prepare each view's input without mmocc (:func:`preprocess_of`).
    outputs : dict
        The output names: ``score``, ``is_anomaly``, and the dicts
        ``views``, ``parts`` and ``maps`` (view or part to output name).
    threshold : float
        The threshold the graph's ``is_anomaly`` compares the score with.
    threshold_source : str
        Where it comes from (``"train"``, ``"holdout"``, ``"calibrate"``).
    contamination : float
        The share of normal samples above the threshold it aims for.
    preset : str
        The model's preset.
    params : dict
        The model's resolved hyper-parameters.
    metadata : dict
        The model's metadata (normal class, data source, resize mode, ...).
    train_fingerprint : str or None
        The fingerprint of the training set.
    train_fingerprints : numpy.ndarray or None
        The fingerprint of each training sample (int64).
    samples_per_run : int
        The most samples one run of the graph is given (it bounds the
        memory of the searches).
    parity : dict
        The parity report of the export (:class:`mmocc.export.parity.ParityReport`).
    """

    version: str
    view_specs: list[ViewSpec]
    inputs: dict[str, str]
    preprocess: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    threshold: float
    threshold_source: str
    contamination: float
    preset: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    train_fingerprint: str | None
    train_fingerprints: np.ndarray | None
    samples_per_run: int
    parity: dict[str, Any]


def output_order(outputs: Mapping[str, Any], *, maps: bool = True) -> list[str]:
    """Return the graph's output names in the graph's order: score, verdict, view scores, parts, maps.

    Parameters
    ----------
    outputs : mapping
        The output names (:attr:`ExportInfo.outputs`).
    maps : bool, default True
        Include the maps (the largest outputs; scoring alone does not need them).

    Returns
    -------
    list of str
        The names.
    """
    names = [outputs["score"], outputs["is_anomaly"], *outputs["views"].values(), *outputs["parts"].values()]
    return names + list(outputs["maps"].values()) if maps else names


def input_dtype(spec: ViewSpec) -> str:
    """Return the NumPy name of a view's graph input dtype: ``"uint8"`` if fitted on it, else ``"float64"``.

    Every other dtype is scaled in float64 (:func:`mmocc.model.nn.scale_dtype`),
    so a float64 input loses nothing of a float32 or integer array. The
    graph, the runtime and the metadata all follow this one rule.

    Parameters
    ----------
    spec : ViewSpec
        The view.

    Returns
    -------
    str
        ``"uint8"`` or ``"float64"``.

    Examples
    --------
    >>> input_dtype(ViewSpec("size", "vector", (2,), "float32"))
    'float64'
    """
    return "uint8" if spec.dtype == "uint8" else "float64"


def preprocess_of(spec: ViewSpec, resize: str | None) -> dict[str, Any]:
    """Describe how a view's input is prepared, for a consumer of the graph that does not run mmocc.

    Parameters
    ----------
    spec : ViewSpec
        The view.
    resize : str or None
        How the training images were resized (the model's ``metadata_["resize"]``), if recorded.

    Returns
    -------
    dict
        For an image: ``layout`` ``"NCHW"``, ``channels``, ``height``,
        ``width``, ``mode`` (``"L"``, ``"RGB"``, or None for other channel
        counts), ``dtype`` and ``resize``; for a vector: ``width`` and ``dtype``.

    Examples
    --------
    >>> preprocess_of(ViewSpec("top", "image", (1, 32, 32), "uint8"), "stretch")["mode"]
    'L'
    """
    dtype = input_dtype(spec)
    if spec.kind != "image":
        return {"kind": "vector", "width": int(spec.shape[0]), "dtype": dtype}
    channels, height, width = (int(side) for side in spec.shape)
    mode = {1: "L", 3: "RGB"}.get(channels)
    return {
        "kind": "image",
        "layout": "NCHW",
        "channels": channels,
        "height": height,
        "width": width,
        "mode": mode,
        "dtype": dtype,
        "resize": resize,
    }


def export_metadata(
    clf: Any, inputs: dict[str, str], outputs: dict[str, Any], samples_per_run: int, parity: dict[str, Any]
) -> dict[str, str]:
    """Return the ``metadata_props`` of a fitted detector's export.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector.
    inputs : dict of str to str
        The graph input name of each view.
    outputs : dict
        The graph's output names (:attr:`ExportInfo.outputs`).
    samples_per_run : int
        The most samples per run of the graph.
    parity : dict
        The parity report (empty before the check).

    Returns
    -------
    dict of str to str
        Keys ``mmocc.<name>``.
    """
    import mmocc

    fingerprints = clf.train_fingerprints_
    resize = (getattr(clf, "metadata_", None) or {}).get("resize")
    values: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": mmocc.__version__,
        "views": [spec.to_dict() for spec in clf.view_specs_],
        "inputs": inputs,
        "preprocess": {spec.name: preprocess_of(spec, resize) for spec in clf.view_specs_},
        "outputs": outputs,
        "threshold": float(clf.threshold_),
        "threshold_source": clf.threshold_source_,
        "contamination": float(clf.contamination),
        "preset": clf.preset,
        "params": clf.params_.to_dict(),
        "metadata": dict(getattr(clf, "metadata_", None) or {}),
        "train_fingerprint": None if fingerprints is None else set_fingerprint(fingerprints),
        "samples_per_run": int(samples_per_run),
        "parity": parity,
    }
    out = {f"mmocc.{key}": json.dumps(value) for key, value in values.items()}
    if fingerprints is not None:
        data = np.ascontiguousarray(fingerprints, dtype="<i8").tobytes()
        out["mmocc.train_fingerprints"] = base64.b64encode(data).decode("ascii")
    return out


def read_metadata(props: Mapping[str, str], source: str) -> ExportInfo:
    """Check the ``metadata_props`` of an ONNX file and return them as an :class:`ExportInfo`.

    Parameters
    ----------
    props : mapping of str to str
        The file's metadata (ONNX Runtime's ``custom_metadata_map``).
    source : str
        The file, named in errors.

    Returns
    -------
    ExportInfo
        The checked metadata.

    Raises
    ------
    ValueError
        For a file that is not an mmocc export, of a newer format, or with a
        missing or malformed key.
    """
    if props.get("mmocc.format") != json.dumps(FORMAT):
        raise ValueError(f"{source} is not an mmocc ONNX export (no mmocc.format in its metadata)")
    missing = [key for key in _REQUIRED if f"mmocc.{key}" not in props]
    if missing:
        raise ValueError(f"{source}: its mmocc metadata lacks {['mmocc.' + key for key in missing]}")
    try:
        values = {key: json.loads(props[f"mmocc.{key}"]) for key in _REQUIRED}
        if values["format_version"] > FORMAT_VERSION:
            raise ValueError(
                f"format version {values['format_version']} is newer than this mmocc reads "
                f"({FORMAT_VERSION}); upgrade mmocc"
            )
        encoded = props.get("mmocc.train_fingerprints")
        fingerprints = None
        if encoded is not None:
            fingerprints = np.frombuffer(base64.b64decode(encoded, validate=True), dtype="<i8").astype(
                np.int64
            )
        return ExportInfo(
            version=str(values["version"]),
            view_specs=[ViewSpec.from_dict(spec) for spec in values["views"]],
            inputs={str(k): str(v) for k, v in values["inputs"].items()},
            preprocess={str(k): dict(v) for k, v in values["preprocess"].items()},
            outputs=dict(values["outputs"]),
            threshold=float(values["threshold"]),
            threshold_source=str(values["threshold_source"]),
            contamination=float(values["contamination"]),
            preset=str(values["preset"]),
            params=dict(values["params"]),
            metadata=dict(values["metadata"]),
            train_fingerprint=values["train_fingerprint"],
            train_fingerprints=fingerprints,
            samples_per_run=int(values["samples_per_run"]),
            parity=dict(values["parity"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{source}: malformed mmocc metadata: {exc}") from None
