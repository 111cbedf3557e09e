"""Score with an exported detector through ONNX Runtime, without PyTorch.

:class:`OnnxDetector` reads an ``.onnx`` file written by ``mmocc export``
(:func:`mmocc.export.export_onnx`), checks its metadata
(:mod:`mmocc.export.metadata`) against the graph, and offers the scoring
half of the estimator's API: ``decision_function``, ``predict``,
``decision_function_details``, ``view_scores``, ``anomaly_maps``,
``score_parts`` and ``seen_in_training``, with the same input checks and
one-line errors (:func:`mmocc.data.inputs.check_views`,
:func:`~mmocc.data.inputs.match_specs`). ``mmocc score``, ``evaluate`` and
``report`` accept it wherever they accept a model file.

Neither this module nor what it imports imports torch: ``pip install
onnxruntime`` and mmocc's data modules are enough to score.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import numpy as np

from mmocc.data.fingerprints import sample_fingerprints
from mmocc.data.inputs import check_views, match_specs
from mmocc.detectors.finite import check_finite_scores
from mmocc.detectors.parts import fired_part
from mmocc.export.metadata import ExportInfo, input_dtype, output_order, read_metadata
from mmocc.utils.text import first_line

_ORT_TYPES = {"uint8": "tensor(uint8)", "float64": "tensor(double)"}


def require_onnxruntime() -> Any:
    """Import ONNX Runtime, or raise an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            'scoring an ONNX export needs ONNX Runtime: pip install onnxruntime (or "mmocc[onnx]")'
        ) from None
    return onnxruntime


def is_onnx_file(path: str | os.PathLike[str]) -> bool:
    """Whether a model path names an ONNX export (by its ``.onnx`` suffix)."""
    return Path(path).suffix.lower() == ".onnx"


class OnnxDetector:
    """A fitted detector exported to ONNX, scored by ONNX Runtime.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        The loaded graph.
    info : ExportInfo
        Its checked metadata.
    source : str
        Where it was read from, for messages.

    Attributes
    ----------
    view_specs_ : list of ViewSpec
        The views the graph takes, in order.
    threshold_ : float
        The threshold of ``is_anomaly``; ``threshold_source_`` says where it
        comes from, and ``contamination`` the share of normals above it aimed for.
    params_ : types.SimpleNamespace
        The model's resolved hyper-parameters (``params_.score`` ...).
    preset : str
        The model's preset.
    metadata_ : mapping
        The model's metadata (normal class, data source, resize mode).
    train_fingerprints_ : numpy.ndarray or None
        Fingerprints of the training samples (:meth:`seen_in_training`).
    info_ : ExportInfo
        Everything the file's metadata says, the parity report of its export included.

    Examples
    --------
    >>> clf = OnnxDetector.load("model.onnx")  # doctest: +SKIP
    >>> clf.decision_function({"front": front_uint8, "side": side_uint8})  # doctest: +SKIP
    """

    def __init__(self, session: Any, info: ExportInfo, source: str) -> None:
        self.session = session
        self.info_ = info
        self.source = source
        self.view_specs_ = list(info.view_specs)
        self.threshold_ = info.threshold
        self.threshold_source_ = info.threshold_source
        self.contamination = info.contamination
        self.params_ = SimpleNamespace(**info.params)
        self.preset = info.preset
        self.metadata_ = MappingProxyType(info.metadata)
        self.train_fingerprints_ = info.train_fingerprints
        self._check_graph()

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, providers: list[str] | None = None, threads: int | None = None
    ) -> OnnxDetector:
        """Read an export from a file.

        Parameters
        ----------
        path : path-like
            The ``.onnx`` file.
        providers : list of str, optional
            ONNX Runtime execution providers; the CPU one by default.
        threads : int, optional
            ONNX Runtime's intra-op threads; by default ``OMP_NUM_THREADS``
            when it is set (as ``mmocc --threads`` sets it), else one per core.

        Returns
        -------
        OnnxDetector
            The detector.

        Raises
        ------
        FileNotFoundError
            For a missing file.
        ValueError
            For a file ONNX Runtime cannot read, or that is not an mmocc export.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}")
        return cls.from_bytes(path.read_bytes(), str(path), providers=providers, threads=threads)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        source: str = "<bytes>",
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
    ) -> OnnxDetector:
        """Read an export from its serialized bytes (see :meth:`load`)."""
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        if threads is None:
            setting = os.environ.get("OMP_NUM_THREADS", "")
            threads = int(setting) if setting.isdigit() and int(setting) > 0 else None
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"threads must be >= 1, got {threads!r}")
            options.intra_op_num_threads = int(threads)
        try:
            session = ort.InferenceSession(data, options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own exception types
            raise ValueError(f"{source} is not a readable ONNX model: {first_line(exc)}") from None
        info = read_metadata(session.get_modelmeta().custom_metadata_map, source)
        return cls(session, info, source)

    def _check_graph(self) -> None:
        """Refuse a graph whose inputs or outputs differ from what its metadata says."""
        inputs = {node.name: node for node in self.session.get_inputs()}
        for spec in self.view_specs_:
            name = self.info_.inputs.get(spec.name)
            node = inputs.get(name) if name is not None else None
            expected = _ORT_TYPES[input_dtype(spec)]
            if node is None or node.type != expected or list(node.shape[1:]) != list(spec.shape):
                raise ValueError(
                    f"{self.source}: the graph's input for view {spec.name!r} does not match its metadata"
                )
        names = {node.name for node in self.session.get_outputs()}
        wanted = output_order(self.info_.outputs)
        if not set(wanted) <= names:
            raise ValueError(f"{self.source}: the graph lacks outputs {sorted(set(wanted) - names)}")

    @property
    def has_anomaly_maps(self) -> bool:
        """bool: whether the graph gives anomaly maps."""
        return bool(self.info_.outputs["maps"])

    def checked_views(self, X: Any) -> dict[str, np.ndarray]:
        """Check ``X`` against the exported views, as the estimator does; every view is needed.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            The samples.

        Returns
        -------
        dict of str to numpy.ndarray
            The views in the graph's order.

        Raises
        ------
        ValueError, TypeError
            With the estimator's messages, for a missing view, a wrong shape or dtype.
        """
        return match_specs(check_views(X), self.view_specs_, allow_missing=False)

    def _feeds(self, views: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Yield the graph's inputs for consecutive runs of at most ``samples_per_run`` samples."""
        n = len(next(iter(views.values())))
        step = max(1, self.info_.samples_per_run)
        for start in range(0, n, step):
            feed = {}
            for spec in self.view_specs_:
                part = views[spec.name][start : start + step]
                feed[self.info_.inputs[spec.name]] = np.ascontiguousarray(part, dtype=input_dtype(spec))
            yield feed

    def _run(self, views: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """Run the graph on checked views, run by run, and join the named outputs."""
        try:
            runs = [self.session.run(names, feed) for feed in self._feeds(views)]
        except Exception as exc:  # ONNX Runtime raises its own exception types
            raise ValueError(
                f"{self.source}: ONNX Runtime failed to run the graph: {first_line(exc)}"
            ) from None
        if not runs:
            return {name: np.zeros(0) for name in names}
        return {name: np.concatenate([run[i] for run in runs]) for i, name in enumerate(names)}

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """Return every output of the graph on ``X`` by name (``score``, ``is_anomaly``, ``score_<view>``...).

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Every exported view, in the dtype and per-sample shape seen at fit time.

        Returns
        -------
        dict of str to numpy.ndarray
            The outputs, runs of at most ``info_.samples_per_run`` samples joined.
        """
        return self._run(self.checked_views(X), output_order(self.info_.outputs))

    def decision_function_details(
        self, X: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Anomaly scores, per-view scores and part scores, as the estimator's method of that name.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Every exported view, in the dtype and per-sample shape seen at fit time.

        Returns
        -------
        scores, view_scores, part_scores
            ``(n,)`` float64 scores, and dicts of ``(n,)`` arrays (empty
            where the rule has none).
        """
        views = self.checked_views(X)
        out = self._run(views, output_order(self.info_.outputs, maps=False))
        names = self.info_.outputs
        scores = out[names["score"]].astype(np.float64)
        by_view = {view: out[name].astype(np.float64) for view, name in names["views"].items()}
        parts = {part: out[name].astype(np.float64) for part, name in names["parts"].items()}
        check_finite_scores(scores, by_view, list(views), "scoring")
        return scores, by_view, parts

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of each sample; higher means more anomalous."""
        return self.decision_function_details(X)[0]

    def predict(self, X: Any) -> np.ndarray:
        """1 where the score is above ``threshold_``, else 0 (the graph's ``is_anomaly``)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def view_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Standardized score of each view; raises for a rule that scores the views jointly."""
        by_view = self.decision_function_details(X)[1]
        if not by_view:
            raise ValueError(
                f"score={self.params_.score!r} scores the views jointly, so it has no per-view scores"
            )
        return by_view

    def score_parts(self, X: Any) -> dict[str, np.ndarray]:
        """Return the global and local part scores of ``score="combined"`` and which part fired."""
        parts = self.decision_function_details(X)[2]
        if not parts:
            raise ValueError(
                f"score={self.params_.score!r} has no global and local parts; use score='combined'"
            )
        return {**parts, "fired": fired_part(parts)}

    def anomaly_maps(self, X: Any) -> dict[str, np.ndarray]:
        """Anomaly map ``(n, H, W)`` of each image view, upsampled and smoothed in the graph."""
        if not self.has_anomaly_maps:
            raise ValueError(f"score={self.params_.score!r} gives one number per sample, not a map")
        maps = self.info_.outputs["maps"]
        out = self._run(self.checked_views(X), list(maps.values()))
        return {view: out[name] for view, name in maps.items()}

    def seen_in_training(self, X: Any) -> np.ndarray:
        """Which samples of ``X`` the detector was fitted on, by content fingerprint."""
        if self.train_fingerprints_ is None:
            raise ValueError("this export records no training-sample fingerprints")
        return np.isin(sample_fingerprints(self.checked_views(X)), self.train_fingerprints_)
