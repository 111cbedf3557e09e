"""PyOD detectors as multiview baselines, behind the mmocc estimator interface.

:class:`BaselineOCC` runs one of six PyOD detectors on multiview input in one
of three ways:

* ``fusion="early"``: each view is flattened and scaled, and the views are
  concatenated into one feature vector for a single detector;
* ``fusion="late"``: one detector per scaled view; each view's scores are
  standardized by the mean and standard deviation of that detector's training
  scores and the results are averaged (PyOD's
  :class:`pyod.models.embedding.MultiModalOD` with ``combination="average"``);
* ``fusion="single"``: exactly one view, the unimodal baseline.

Thresholds, labels and probabilities come from
:class:`mmocc.detectors.base.BaseMultiviewDetector`, so a baseline is scored and
evaluated exactly like the multimodal model.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from mmocc.detectors.base import BaseMultiviewDetector
from mmocc.model.params import BASELINE_CONSTRAINTS

_PYOD_CLASSES: dict[str, tuple[str, str]] = {
    "knn": ("pyod.models.knn", "KNN"),
    "iforest": ("pyod.models.iforest", "IForest"),
    "ocsvm": ("pyod.models.ocsvm", "OCSVM"),
    "pca": ("pyod.models.pca", "PCA"),
    "autoencoder": ("pyod.models.auto_encoder", "AutoEncoder"),
    "deepsvdd": ("pyod.models.deep_svdd", "DeepSVDD"),
}
_TORCH_DETECTORS = frozenset({"autoencoder", "deepsvdd"})
_RESERVED_PARAMS = frozenset({"contamination", "n_features"})
_DEFAULT_BATCH_SIZE = 32
_DEFAULT_EPOCHS = 20
_DEFAULT_NEIGHBORS = 5


PYOD_MISSING = 'the PyOD baselines need the optional dependency pyod: pip install "mmocc[baselines]"'
"""The error message when pyod is not installed."""


def _require_pyod() -> None:
    """Raise a ModuleNotFoundError that names the install command when pyod is missing."""
    if importlib.util.find_spec("pyod") is None:
        raise ModuleNotFoundError(PYOD_MISSING, name="pyod")


def _pyod_class(module_name: str, class_name: str) -> Any:
    """Import a PyOD class, with the install command in the error when pyod is missing."""
    _require_pyod()
    return getattr(importlib.import_module(module_name), class_name)


def _fit_scaler(block: np.ndarray, scaling: str) -> StandardScaler:
    """Fit a feature scaler on one training view.

    ``"feature"`` is a plain :class:`~sklearn.preprocessing.StandardScaler`.
    ``"view"`` centres each feature but divides every feature by the same
    number, the root mean square of the per-feature standard deviations, so the
    geometry inside the view is kept; it is stored as a ``StandardScaler``
    whose ``scale_`` repeats that number.
    """
    scaler = StandardScaler().fit(block)
    if scaling == "view":
        rms = float(np.sqrt(np.mean(scaler.var_)))
        scaler.scale_ = np.full_like(scaler.scale_, rms if rms > 0 else 1.0)
    return scaler


def _as_features(array: np.ndarray) -> np.ndarray:
    """Flatten a canonical view to ``(n, d)`` floats; uint8 is mapped to [0, 1]."""
    flat = array.reshape(len(array), -1)
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255.0)
    return flat.astype(np.result_type(flat.dtype, np.float32), copy=False)


@contextmanager
def _isolated_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global RNGs, restoring them afterwards.

    PyOD's torch detectors seed the global generators (and set
    ``PYTHONHASHSEED``) when they are constructed, and draw from them while
    training. Running them inside this context makes them reproducible without
    changing the caller's random streams.
    """
    import torch

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    hash_seed = os.environ.get("PYTHONHASHSEED")
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            if hash_seed is None:
                os.environ.pop("PYTHONHASHSEED", None)
            else:
                os.environ["PYTHONHASHSEED"] = hash_seed


class BaselineOCC(BaseMultiviewDetector):
    """A PyOD detector applied to multiview data by early, late or no fusion.

    Every view is flattened to ``(n_samples, n_features)`` floats (uint8 images
    are first divided by 255) and standardized with a scaler fitted on that
    view's training data (see ``scaling``). The scaled views then feed the
    detector(s) according to ``fusion``. This scaling is the only
    preprocessing: the internal standardization of PyOD's PCA, AutoEncoder and
    DeepSVDD is switched off by default, so every detector sees the same input.

    Parameters
    ----------
    detector : {"knn", "iforest", "ocsvm", "pca", "autoencoder", "deepsvdd"}, default "knn"
        The PyOD detector: :class:`pyod.models.knn.KNN`,
        :class:`pyod.models.iforest.IForest`, :class:`pyod.models.ocsvm.OCSVM`,
        :class:`pyod.models.pca.PCA`,
        :class:`pyod.models.auto_encoder.AutoEncoder` or
        :class:`pyod.models.deep_svdd.DeepSVDD`. Defaults that differ from
        PyOD's: KNN uses at most ``n_samples - 1`` neighbours; OCSVM uses
        ``gamma="scale"``; PCA, AutoEncoder and DeepSVDD do not standardize
        again; AutoEncoder and DeepSVDD train quietly on the CPU for 20 epochs
        with batches of at most 32 samples; DeepSVDD gets ``n_features`` from
        the data. IForest, PCA, AutoEncoder and DeepSVDD get a seed derived
        from ``random_state``.
    fusion : {"early", "late", "single"}, default "early"
        ``"early"``: one detector on the concatenated scaled views.
        ``"late"``: one detector per view; each view's scores are standardized
        by the mean and standard deviation of its training scores, then
        averaged (:class:`pyod.models.embedding.MultiModalOD`).
        ``"single"``: exactly one view (select it with ``views``), the
        unimodal baseline.
    views : str or list of str, optional
        Views to use, in order; ``None`` uses every view of the input.
    contamination : float, default 0.05
        Fraction of normal samples above ``threshold_``, in ``(0, 0.5]``.
    threshold : {"train", "holdout"}, default "train"
        Where ``threshold_`` comes from: the training scores, or the scores
        of ``validation_fraction`` of the samples held out of fitting (as
        :class:`mmocc.MultimodalOCC`).
    validation_fraction : float, default 0.2
        Share of the samples held out with ``threshold="holdout"``.
    scaling : {"view", "feature"}, default "view"
        ``"view"``: centre every feature, then divide the whole view by one
        number, the root mean square of its per-feature standard deviations;
        distances inside a view keep their shape and every view gets the same
        average feature variance. ``"feature"``: a plain
        :class:`~sklearn.preprocessing.StandardScaler`, unit variance per
        feature; with few training samples it blows up near-constant features
        such as image background pixels.
    detector_params : dict, optional
        Keyword arguments for the PyOD detector class, overriding the defaults
        above (e.g. ``{"n_neighbors": 10}`` or ``{"epoch_num": 50}``).
        ``contamination`` and ``n_features`` are set by this class.
    random_state : int, numpy.random.RandomState or None, optional
        Seed for the seeded detectors. The same integer gives the same scores
        on CPU. The torch-based detectors are built and trained with the global
        Python, NumPy and torch generators seeded, and those generators are
        restored afterwards, so fitting leaves the caller's random streams
        unchanged.

    Attributes
    ----------
    scalers_ : dict of str to sklearn.preprocessing.StandardScaler
        The per-view scalers, fitted on the training views. With
        ``scaling="view"`` each ``scale_`` repeats the view's single scale.
    detector_ : pyod.models.base.BaseDetector
        The fitted PyOD detector (early and single fusion) or
        :class:`~pyod.models.embedding.MultiModalOD` holding one fitted detector
        per view in ``detectors_`` (late fusion).
    view_specs_ : list of mmocc.data.inputs.ViewSpec
        Names and per-sample shapes of the views seen at fit time.
    n_samples_in_ : int
        Number of training samples.
    decision_scores_ : numpy.ndarray of shape (n_samples_in_,)
        Anomaly scores of the training samples.
    threshold_ : float
        The ``1 - contamination`` quantile of ``decision_scores_``.
    labels_ : numpy.ndarray of shape (n_samples_in_,)
        Training labels, 1 above ``threshold_``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmocc.detectors.baselines import BaselineOCC
    >>> rng = np.random.default_rng(0)
    >>> train = {"left": rng.normal(size=(40, 5)), "right": rng.normal(size=(40, 3))}
    >>> test = {"left": rng.normal(size=(2, 5)) + [[0.0], [6.0]],
    ...         "right": rng.normal(size=(2, 3)) + [[0.0], [6.0]]}
    >>> model = BaselineOCC(detector="knn", fusion="late").fit(train)
    >>> model.predict(test)
    array([0, 1])
    """

    _param_constraints = BASELINE_CONSTRAINTS

    def __init__(
        self,
        *,
        detector: str = "knn",
        fusion: str = "early",
        views: str | list[str] | None = None,
        contamination: float = 0.05,
        threshold: str = "train",
        validation_fraction: float = 0.2,
        scaling: str = "view",
        detector_params: dict[str, Any] | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.detector = detector
        self.fusion = fusion
        self.views = views
        self.contamination = contamination
        self.threshold = threshold
        self.validation_fraction = validation_fraction
        self.scaling = scaling
        self.detector_params = detector_params
        self.random_state = random_state

    def check_params(self) -> dict[str, Any]:
        """Validate the parameters; return a copy of ``detector_params``.

        Every parameter is checked against
        :data:`~mmocc.model.params.BASELINE_CONSTRAINTS`; ``detector_params``
        must not set what this class sets itself.

        Returns
        -------
        dict
            The detector parameters.

        Raises
        ------
        ValueError
            Naming the first invalid parameter.
        ModuleNotFoundError
            If pyod, an optional dependency, is not installed.
        """
        _require_pyod()
        detector_params = super().check_params()["detector_params"] or {}
        reserved = sorted(_RESERVED_PARAMS & set(detector_params))
        if reserved:
            raise ValueError(
                f"detector_params must not set {reserved}: contamination is this estimator's "
                "parameter and n_features comes from the data"
            )
        return dict(detector_params)

    def _make_detector(self, n_samples: int, n_features: int, seed: int, params: dict[str, Any]) -> Any:
        """Build an unfitted PyOD detector for data of the given size."""
        module_name, class_name = _PYOD_CLASSES[self.detector]
        cls = _pyod_class(module_name, class_name)
        by_detector: dict[str, dict[str, Any]] = {
            "knn": {"n_neighbors": max(1, min(_DEFAULT_NEIGHBORS, n_samples - 1))},
            "iforest": {"random_state": seed},
            "ocsvm": {"gamma": "scale"},
            "pca": {"standardization": False, "random_state": seed},
            "autoencoder": {
                "preprocessing": False,
                "epoch_num": _DEFAULT_EPOCHS,
                "batch_size": min(_DEFAULT_BATCH_SIZE, n_samples),
                "verbose": 0,
                "device": "cpu",
                "random_state": seed,
            },
            "deepsvdd": {
                "preprocessing": False,
                "epochs": _DEFAULT_EPOCHS,
                "batch_size": _DEFAULT_BATCH_SIZE,
                "verbose": 0,
                "random_state": seed,
                "n_features": n_features,
            },
        }
        kwargs = {**by_detector[self.detector], **params, "contamination": self.contamination}
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ValueError(
                f"detector_params {unknown} are not parameters of pyod {class_name}; "
                f"valid: {sorted(accepted - _RESERVED_PARAMS)}"
            )
        return cls(**kwargs)

    def _fit_views(self, views: dict[str, np.ndarray], groups: np.ndarray | None = None) -> np.ndarray:
        """Scale each view, fit the detector(s) and return the training scores (PyOD's own; groups unused)."""
        params = self.check_params()
        if self.fusion == "single" and len(views) != 1:
            raise ValueError(
                f"fusion='single' needs exactly one view, got {len(views)}: {list(views)}; "
                "choose one with views=[name]"
            )
        features = {name: _as_features(array) for name, array in views.items()}
        self.scalers_ = {name: _fit_scaler(block, self.scaling) for name, block in features.items()}
        scaled = {name: self.scalers_[name].transform(block) for name, block in features.items()}
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=len(scaled))
        # PyOD's torch detectors seed the global RNGs in __init__, so build them inside the context too.
        torch_based = self.detector in _TORCH_DETECTORS
        with _isolated_global_rngs(int(seeds[0])) if torch_based else nullcontext():
            if self.fusion == "late":
                multimodal = _pyod_class("pyod.models.embedding", "MultiModalOD")
                modalities = {
                    name: self._make_detector(len(block), block.shape[1], int(seed), params)
                    for (name, block), seed in zip(scaled.items(), seeds, strict=True)
                }
                self.detector_ = multimodal(
                    modalities,
                    combination="average",
                    contamination=self.contamination,
                    standardize_scores=True,
                ).fit(scaled)
            else:
                joint = np.concatenate(list(scaled.values()), axis=1)
                self.detector_ = self._make_detector(len(joint), joint.shape[1], int(seeds[0]), params)
                self.detector_.fit(joint)
        return np.asarray(self.detector_.decision_scores_, dtype=np.float64)

    def _score_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """Scale each view as at fit time and return the detector's scores."""
        scaled = {name: self.scalers_[name].transform(_as_features(array)) for name, array in views.items()}
        data: Any = scaled if self.fusion == "late" else np.concatenate(list(scaled.values()), axis=1)
        return np.asarray(self.detector_.decision_function(data), dtype=np.float64)
