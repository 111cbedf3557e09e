"""Device selection."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"`` into CUDA when available, else CPU.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` or any torch device string.

    Returns
    -------
    torch.device
        The device to use.

    Raises
    ------
    ValueError
        If the device string is invalid or names an unavailable CUDA device.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved
