"""Save and load a :class:`~mmocc.detectors.multimodal.MultimodalOCC`: what goes in a model file, and back.

:func:`save` gathers the weights (``model.*``), the scoring rule's state
(``rule.*``), the training and calibration scores, fingerprints and centre,
and a JSON header; :func:`load` rebuilds the estimator from them after every
check has passed. The file itself is :mod:`mmocc.io.format`, the header schema
:mod:`mmocc.io.header`, the tensor checks :mod:`mmocc.io.tensors`, and each
scoring rule describes its own state
(:meth:`~mmocc.scoring.base.ScoringRule.state_spec`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from mmocc.data.fingerprints import set_fingerprint
from mmocc.data.inputs import ViewSpec
from mmocc.detectors.multimodal import MultimodalOCC
from mmocc.io.format import read_config, write_model_file
from mmocc.io.header import check_known_keys
from mmocc.io.tensors import (
    calibration_view_expectations,
    check_no_others,
    check_tensors,
    feature_dims,
    model_expectations,
    patch_channels,
    score_expectations,
)
from mmocc.model.backbones import FeatureBackbone, backbone_fingerprint, patch_backbone
from mmocc.model.device import resolve_device
from mmocc.model.hyperparams import HyperParams
from mmocc.model.nn import JointAutoencoder
from mmocc.scoring import ScoringRule
from mmocc.scoring.state import Expect


def save(clf: MultimodalOCC, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> None:
    """Save a fitted :class:`~mmocc.detectors.multimodal.MultimodalOCC` (see its ``save``).

    The scoring rule's state is checked against its own
    :meth:`~mmocc.scoring.base.ScoringRule.state_spec` before anything is
    written, so a file :func:`load` would refuse is never written.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted estimator.
    path : str or path-like
        Destination; written atomically.
    metadata : mapping, optional
        JSON-serialisable facts about the training, kept as ``metadata_``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    TypeError
        If ``metadata`` is not JSON-serialisable.
    ValueError
        If the rule's state does not match its spec (a bug, named).
    """
    check_is_fitted(clf, "threshold_")
    if metadata is not None:
        clf.metadata_ = dict(metadata)
    tensors = {f"model.{k}": v.detach().cpu() for k, v in clf.model_.state_dict().items()}
    rule_state = {f"rule.{k}": torch.from_numpy(np.asarray(v)) for k, v in clf.rule_.state().items()}
    expected = rule_spec(clf, clf.rule_, clf.backbone_, len(clf.decision_scores_))
    check_tensors(rule_state, expected, path)
    check_no_others(rule_state, set(expected), path)
    tensors.update(rule_state)
    tensors.update(_score_tensors(clf))
    write_model_file(path, tensors, _header(clf))


def _score_tensors(clf: MultimodalOCC) -> dict[str, torch.Tensor]:
    """Return the training and calibration scores, training fingerprints and centre, as tensors."""
    tensors = {"decision_scores": torch.from_numpy(clf.decision_scores_)}
    if clf.train_fingerprints_ is not None:
        tensors["train_fingerprints"] = torch.from_numpy(clf.train_fingerprints_)
    if clf.calibration_scores_ is not None:
        tensors["calibration_scores"] = torch.from_numpy(clf.calibration_scores_)
        for view, values in clf.calibration_view_scores_.items():
            tensors[f"calibration_view.{view}"] = torch.from_numpy(np.ascontiguousarray(values))
    if clf.center_ is not None:
        tensors["center"] = torch.from_numpy(clf.center_)
    return tensors


def _header(clf: MultimodalOCC) -> dict[str, Any]:
    """Return the JSON header of a fitted estimator (the format tag and versions are added on writing)."""
    params = clf.get_params()
    if isinstance(params["patch_backbone"], torch.nn.Module):
        params["patch_backbone"] = "custom"
    header = {
        "estimator_params": params,
        "params": clf.params_.to_dict(),
        "views": [spec.to_dict() for spec in clf.view_specs_],
        "threshold": clf.threshold_,
        "n_samples_in": clf.n_samples_in_,
        "history": clf.history_,
        "trained_on": clf.device_,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threshold_source": clf.threshold_source_,
        "training": {
            "n_samples": clf.n_samples_in_,
            "n_calibration": 0 if clf.calibration_scores_ is None else len(clf.calibration_scores_),
            "fingerprint": None
            if clf.train_fingerprints_ is None
            else set_fingerprint(clf.train_fingerprints_),
        },
        "metadata": getattr(clf, "metadata_", {}),
    }
    if clf.backbone_ is not None:
        header["backbone"] = {
            "name": clf.params_.patch_backbone,
            "fingerprint": backbone_fingerprint(clf.backbone_),
        }
    return header


def rule_spec(
    clf: MultimodalOCC, rule: ScoringRule, backbone: torch.nn.Module | None, n_train: int
) -> dict[str, Expect]:
    """Return the rule's state spec for this model's feature widths, prefixed ``rule.`` as in the file.

    Parameters
    ----------
    clf : MultimodalOCC
        The estimator whose model gives the feature widths.
    rule : ScoringRule
        The rule (fitted, or built from a file's header).
    backbone : torch.nn.Module or None
        The patch backbone; None for the autoencoder's own maps.
    n_train : int
        Training samples the rule was fitted on.

    Returns
    -------
    dict of str to Expect
        What each ``rule.*`` tensor must be.
    """
    width = patch_channels(clf.params_.filters, backbone if isinstance(backbone, FeatureBackbone) else None)
    dims = feature_dims(clf.model_.latent_dims(), clf.view_specs_, width, n_train)
    return {f"rule.{key}": value for key, value in rule.state_spec(dims).items()}


def load(
    path: str | os.PathLike[str], *, device: str = "auto", backbone: torch.nn.Module | None = None
) -> MultimodalOCC:
    """Load a model saved with :meth:`MultimodalOCC.save`.

    A model file stores a pretrained backbone's name and fingerprint, not its
    weights: a named backbone is rebuilt from its installed package, a custom
    one must be passed again, and either must match the fingerprint.

    Nothing is built from the file before it is checked: the header against
    one schema with size limits (:mod:`mmocc.io.header`), then every tensor's
    name, dtype, shape and values against the model the header describes
    (:mod:`mmocc.io.tensors`, and the scoring rule's own
    :meth:`~mmocc.scoring.base.ScoringRule.state_spec`); the module is built on the ``meta`` device and
    takes the file's own tensors, so memory stays bounded by the file's size.

    Parameters
    ----------
    path : str or path-like
        The model file.
    device : str, default "auto"
        Where to put the module; a GPU-trained model loads on the CPU.
    backbone : torch.nn.Module, optional
        The module a model with ``patch_backbone=<module>`` was fitted with.

    Returns
    -------
    MultimodalOCC
        A fitted estimator whose scores equal the saved one's.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If it cannot be read (a folder, no permission), naming it.
    ValueError
        If the file is not a valid, compatible mmocc model: a header field or
        a tensor is missing, malformed, beyond the limits, or does not fit the
        model; the message names the file and the field or tensor.
    """
    header, tensors = read_config(path)
    clf = _stored_estimator(header, path, device, backbone)
    clf.device_ = str(resolve_device(device))
    clf.model_ = _stored_model(clf, tensors, path).to(clf.device_).eval()
    _check_scores(clf, header, tensors, path)
    clf.center_ = tensors["center"].numpy() if "center" in tensors else None
    patch_backbone = _stored_backbone(clf, header["backbone"], path)
    clf.backbone_ = None if patch_backbone is None else patch_backbone.to(clf.device_)
    clf.rule_ = _stored_rule(clf, tensors, path, patch_backbone)
    clf.history_ = header["history"]
    clf.n_samples_in_ = header["n_samples_in"]
    _restore_threshold(clf, header, tensors)
    clf.metadata_ = dict(header["metadata"])
    return clf


def _stored_estimator(
    header: dict[str, Any], path: str | os.PathLike[str], device: str, backbone: torch.nn.Module | None
) -> MultimodalOCC:
    """Rebuild the estimator with its parameters, resolved hyper-parameters and views from a checked header.

    Parameters absent from the file (added after it was written) take their
    defaults; unknown ones are refused as coming from another mmocc.
    """
    defaults = MultimodalOCC().get_params()
    stored = header["estimator_params"]
    check_known_keys("estimator_params", stored, defaults, path, header["mmocc_version"])
    params = {**defaults, **stored, "device": device}
    for key in ("filters", "hidden", "views", "patch_layers"):
        if isinstance(params[key], list):
            params[key] = tuple(params[key])
    if backbone is not None:
        params["patch_backbone"] = backbone
    clf = MultimodalOCC(**params)
    try:
        clf.check_params()
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{str(path)!r}: invalid stored estimator parameters: {exc}") from None
    clf.params_ = HyperParams.from_dict(header["params"])
    clf.view_specs_ = [ViewSpec.from_dict(v) for v in header["views"]]
    return clf


def _stored_model(
    clf: MultimodalOCC, tensors: dict[str, torch.Tensor], path: str | os.PathLike[str]
) -> JointAutoencoder:
    """Build the module the header describes on the meta device, check the file's weights, and take them.

    Building on the meta device allocates nothing, so a header that declares
    a huge view costs nothing before its weights are found missing.
    """
    try:
        with torch.device("meta"):
            model = JointAutoencoder(clf.view_specs_, clf.params_.arch())
    except (KeyError, ValueError) as exc:
        message = f"the stored views and hyper-parameters make no model: {exc}"
        raise ValueError(f"{str(path)!r}: {message}") from None
    expected = model_expectations(model.state_dict())
    check_tensors(tensors, expected, path)
    check_no_others({k: v for k, v in tensors.items() if k.startswith("model.")}, set(expected), path)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True, assign=True)
    return model


_SIZES = {"decision_scores": Expect((None,)), "calibration_scores": Expect((None,), required=False)}


def _check_scores(
    clf: MultimodalOCC, header: dict[str, Any], tensors: dict[str, torch.Tensor], path: str | os.PathLike[str]
) -> None:
    """Check the training and calibration scores, fingerprints and centre, and nothing else unexpected.

    The training scores set the threshold, so they must be finite floats, one
    per sample fitted on; calibration scores must be there exactly when the
    header says the threshold comes from held-out or calibration samples.
    """
    check_tensors(tensors, _SIZES, path)
    calibration = tensors.get("calibration_scores")
    n_calibration = None if calibration is None else len(calibration)
    if (n_calibration is None) != (header["threshold_source"] == "train"):
        raise ValueError(
            f"{str(path)!r}: the threshold comes from {header['threshold_source']!r} but the file holds "
            f"{'no' if n_calibration is None else n_calibration} calibration scores"
        )
    expected = score_expectations(
        header["n_samples_in"],
        len(tensors["decision_scores"]),
        n_calibration,
        center_width=sum(clf.model_.latent_dims().values()),
        center_required=clf.params_.score == "center",
    )
    if n_calibration is not None:
        expected.update(calibration_view_expectations([s.name for s in clf.view_specs_], n_calibration))
    check_tensors(tensors, expected, path)
    others = {k: v for k, v in tensors.items() if not k.startswith(("model.", "rule."))}
    check_no_others(others, set(expected), path)


def _stored_rule(
    clf: MultimodalOCC,
    tensors: dict[str, torch.Tensor],
    path: str | os.PathLike[str],
    backbone: FeatureBackbone | None,
) -> ScoringRule:
    """Build the scoring rule the header asks for, check its stored state against its features, restore it."""
    rule = clf._make_rule()
    expected = rule_spec(clf, rule, backbone, len(tensors["decision_scores"]))
    check_tensors(tensors, expected, path)
    state = {k: v for k, v in tensors.items() if k.startswith("rule.")}
    check_no_others(state, set(expected), path)
    rule.load_state({k[len("rule.") :]: v.numpy() for k, v in state.items()})
    return rule


def _restore_threshold(clf: MultimodalOCC, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Set the training scores, fingerprints and threshold (calibrated, if it was) from checked tensors."""
    clf._set_threshold(tensors["decision_scores"].numpy().astype(np.float64))
    fingerprints = tensors.get("train_fingerprints")
    clf.train_fingerprints_ = None if fingerprints is None else fingerprints.numpy()
    if "calibration_scores" in tensors:
        prefix = "calibration_view."
        by_view = {
            key[len(prefix) :]: value.numpy().astype(np.float64)
            for key, value in tensors.items()
            if key.startswith(prefix)
        }
        scores = tensors["calibration_scores"].numpy().astype(np.float64)
        clf._set_calibration(scores, by_view, header["threshold_source"])


def _stored_backbone(
    clf: MultimodalOCC, stored: dict[str, Any] | None, path: str | os.PathLike[str]
) -> FeatureBackbone | None:
    """Rebuild the backbone a model file names, checking its fingerprint."""
    if stored is None:
        return None
    if stored["name"] == "custom" and not isinstance(clf.patch_backbone, torch.nn.Module):
        raise ValueError(
            f"{str(path)!r} was fitted with a custom patch backbone: pass it again with "
            "load(path, backbone=module)"
        )
    module = patch_backbone(clf.params_.patch_backbone, clf.patch_backbone, clf.params_.patch_layers)
    assert isinstance(module, FeatureBackbone)
    if backbone_fingerprint(module) != stored["fingerprint"]:
        raise ValueError(
            f"{str(path)!r}: the patch backbone {stored['name']!r} differs from the one the model was fitted "
            "with (weights fingerprint mismatch)"
        )
    return module


__all__ = ["load", "rule_spec", "save"]
