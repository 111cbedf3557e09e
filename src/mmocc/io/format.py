"""The model file format: one safetensors file with a JSON header, never pickle.

:meth:`mmocc.MultimodalOCC.save` and :func:`mmocc.load` build and read what
goes in; this module writes and reads the file itself.

A model file is one safetensors file. Its tensors are the torch module's
state dict (``model.*``, input scaling included), the scoring rule's state
(``rule.*``), the training scores and the centre. Its metadata header holds a
JSON document with the format tag and version, the mmocc version, the
estimator parameters, the resolved hyper-parameters, the view names, kinds and
shapes, the threshold and the training history. Loading reads only tensors
and JSON, so a file from someone else cannot run code; the header is checked
against one schema (:mod:`mmocc.io.header`) and the tensors against the model
it describes (:mod:`mmocc.io.tensors`) before anything is built from them.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mmocc import __version__
from mmocc.io.header import check_header
from mmocc.utils.files import atomic_path

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

    Raises
    ------
    ValueError
        If the header is one :func:`read_config` would refuse (a size beyond
        :data:`mmocc.io.header.LIMITS`, say); nothing is written.
    OSError
        With ``filename`` set to ``path`` and the system's reason, when the file
        cannot be written (a full disk, say); the temporary file is removed and
        an existing file at ``path`` is left as it was.
    """
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mmocc_version": __version__,
        "torch_version": torch.__version__,
        **{key: _jsonable(value) for key, value in header.items()},
    }
    stored = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    metadata = {"mmocc": json.dumps(config)}
    check_header(json.loads(metadata["mmocc"]), path)
    with atomic_path(path) as tmp:
        try:
            save_file(stored, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            raise _write_error(exc, path) from None


def _write_error(exc: SafetensorError, path: str | os.PathLike[str]) -> OSError:
    """Turn a failed safetensors write into an OSError naming ``path``, with the errno and reason it gives.

    Examples
    --------
    >>> error = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    >>> str(_write_error(error, "m.mmocc"))
    "[Errno 28] No space left on device: 'm.mmocc'"
    """
    found = re.search(r"os error (\d+)", str(exc))
    if found is None:
        return OSError(errno.EIO, f"cannot write the model file ({exc})", str(path))
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


def _check_readable(path: Path) -> None:
    """Open ``path`` for reading, turning a failure into an error that names it and says why."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{str(path)!r} is a folder, not a model file") from None
    except OSError as exc:
        raise type(exc)(f"cannot read the model file {str(path)!r}: {exc.strerror or exc}") from None


def _parse_header(path: Path, text: str) -> dict[str, Any]:
    """Parse the JSON header and check the format tag and version."""
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON or an integer too long to convert
        raise ValueError(f"{str(path)!r}: the mmocc metadata is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{str(path)!r} is not an mmocc model (its metadata is not a JSON object)")
    if config.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not an mmocc model (format {config.get('format')!r:.60})")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has model format version {version!r:.60} "
            f"(written by mmocc {config.get('mmocc_version')!s:.60}); this mmocc {__version__} reads "
            f"version {FORMAT_VERSION}"
        )
    return config


def read_config(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and validate a model file's JSON config and tensors.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    config : dict
        The JSON config, checked against :data:`mmocc.io.header.HEADER`, with
        the keys and hyper-parameters added after format 1 filled in.
    tensors : dict of str to Tensor
        All tensors, on the CPU (not yet checked against the model; see
        :mod:`mmocc.io.tensors`).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If it cannot be read (a folder, no permission), naming it and why.
    ValueError
        If it is not an mmocc model, is truncated or corrupt, comes from an
        incompatible format version, or its header is missing or has an
        invalid field (named).
    """
    path = Path(path)
    _check_readable(path)
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
    return check_header(_parse_header(path, metadata["mmocc"]), path), tensors
