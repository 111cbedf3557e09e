"""The model file format: one safetensors file with a JSON header, never pickle.

:meth:`mmocc.MultimodalOCC.save` and :func:`mmocc.load` build and read what
goes in; this module writes and reads the file itself.

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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmocc import __version__
from mmocc.utils import atomic_path

FORMAT = "mmocc-model"
FORMAT_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Turn tuples, NumPy scalars and RandomState objects into JSON values, recursively."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.random.RandomState):
        return None
    return value


def write_model_file(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], header: dict[str, Any]
) -> None:
    """Write tensors and a JSON header as an mmocc model file, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination file; written to a temporary file in the same folder,
        synced and renamed, so an interrupted save leaves no partial file.
    tensors : dict of str to Tensor
        The tensors to store (moved to the CPU, made contiguous).
    header : dict
        JSON-serialisable values (tuples, NumPy scalars and RandomState
        objects are converted); the format tag and the versions are added.
    """
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mmocc_version": __version__,
        "torch_version": torch.__version__,
        **{key: _jsonable(value) for key, value in header.items()},
    }
    stored = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(stored, str(tmp), metadata={"mmocc": json.dumps(config)})


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
