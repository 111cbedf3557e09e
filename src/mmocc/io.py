"""Save and load fitted :class:`~mmocc.MultimodalOCC` models without pickle.

A model file is one safetensors file. Its tensors are the torch module's
state dict (``model.*``, input scaling included), the scoring rule's state
(``rule.*``), the training scores and the centre. Its metadata header holds a
JSON document with the format tag and version, the mmocc version, the
estimator parameters, the resolved hyper-parameters, the view names, kinds and
shapes, the threshold and the training history. Loading reads only tensors
and JSON, so a file from someone else cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmocc import __version__
from mmocc.data.inputs import ViewSpec
from mmocc.detector import MultimodalOCC, resolve_device, rule_for
from mmocc.model.nn import JointAutoencoder

FORMAT = "mmocc-model"
FORMAT_VERSION = 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.random.RandomState):
        return None
    return value


def save_model(clf: MultimodalOCC, path: str | os.PathLike[str]) -> None:
    """Write a fitted model to ``path`` atomically.

    Parameters
    ----------
    clf : MultimodalOCC
        A fitted estimator.
    path : str or path-like
        Destination file; written to a temporary file in the same folder and
        renamed, so an interrupted save leaves no partial file.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``clf`` is not fitted.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(clf, "threshold_")
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in clf.model_.state_dict().items()}
    for key, value in clf.rule_.state().items():
        tensors[f"rule.{key}"] = torch.from_numpy(np.ascontiguousarray(value))
    tensors["decision_scores"] = torch.from_numpy(np.ascontiguousarray(clf.decision_scores_))
    if clf.center_ is not None:
        tensors["center"] = torch.from_numpy(np.ascontiguousarray(clf.center_))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mmocc_version": __version__,
        "torch_version": torch.__version__,
        "estimator_params": {k: _jsonable(v) for k, v in clf.get_params().items()},
        "params": {k: _jsonable(v) for k, v in clf.params_.items()},
        "views": [spec.to_dict() for spec in clf.view_specs_],
        "threshold": clf.threshold_,
        "n_samples_in": clf.n_samples_in_,
        "history": clf.history_,
        "trained_on": clf.device_,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"mmocc": json.dumps(config)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_config(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and validate a model file's JSON config and tensors.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    config : dict
        The JSON config.
    tensors : dict of str to Tensor
        All tensors, on the CPU.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not an mmocc model, is truncated or corrupt, or comes from an
        incompatible format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several types for bad files
        raise ValueError(
            f"{str(path)!r} is not a readable mmocc model file (truncated or corrupt?): {exc}"
        ) from None
    if "mmocc" not in metadata:
        raise ValueError(f"{str(path)!r} is a safetensors file but not an mmocc model (no 'mmocc' metadata)")
    try:
        config = json.loads(metadata["mmocc"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r}: the mmocc metadata is not valid JSON: {exc}") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not an mmocc model (format {config.get('format')!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has model format version {config.get('format_version')!r} "
            f"(written by mmocc {config.get('mmocc_version')}); this mmocc {__version__} reads "
            f"version {FORMAT_VERSION}"
        )
    return config, tensors


def load(path: str | os.PathLike[str], *, device: str = "auto") -> MultimodalOCC:
    """Load a model saved with :meth:`MultimodalOCC.save`.

    Parameters
    ----------
    path : str or path-like
        The model file.
    device : str, default "auto"
        Where to put the module; a GPU-trained model loads on the CPU.

    Returns
    -------
    MultimodalOCC
        A fitted estimator whose scores equal the saved one's.

    Raises
    ------
    ValueError
        If the file is not a valid, compatible mmocc model.
    """
    config, tensors = read_config(path)
    params = dict(config["estimator_params"])
    for key in ("filters", "hidden", "views"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    params["device"] = device
    clf = MultimodalOCC(**params)
    resolved = dict(config["params"])
    resolved["filters"] = tuple(resolved["filters"])
    resolved["hidden"] = tuple(resolved["hidden"])
    specs = [ViewSpec.from_dict(v) for v in config["views"]]
    model = JointAutoencoder(specs, MultimodalOCC.arch_config(resolved))
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{str(path)!r}: weights do not match the stored architecture: {exc}") from None
    clf.model_ = model.to(resolve_device(device)).eval()
    clf.params_ = resolved
    clf.view_specs_ = specs
    clf.center_ = tensors["center"].numpy() if "center" in tensors else None
    rule_state = {k[len("rule.") :]: v.numpy() for k, v in tensors.items() if k.startswith("rule.")}
    clf.rule_ = rule_for(resolved, clf.center_, model.view_group)
    clf.rule_.load_state(rule_state)
    clf.device_ = str(resolve_device(device))
    clf.history_ = config["history"]
    clf.n_samples_in_ = int(config["n_samples_in"])
    clf._set_threshold(tensors["decision_scores"].numpy().astype(np.float64))
    return clf
