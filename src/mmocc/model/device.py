"""Device selection and where bf16 autocast pays."""

from __future__ import annotations

import functools
from pathlib import Path

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


AMP_CHOICES: tuple[object, ...] = ("auto", True, False)
"""Values of the ``amp`` parameter."""

_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """Return the CPU feature flags from /proc/cpuinfo (empty where it does not exist), read once."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively, so bf16 autocast speeds training up.

    CUDA: the device supports bf16. CPU: torch dispatches to AVX-512 kernels
    and the CPU has AVX512-BF16 or AMX-BF16 instructions. Without them torch
    emulates bf16: on an AVX2 AMD EPYC, bf16 autocast made training about 5x
    slower (``benchmarks/speed.py``, section "Training").

    Parameters
    ----------
    device : torch.device
        Where training runs.

    Returns
    -------
    bool
        True when bf16 autocast is expected to be faster than float32.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    return torch.backends.cpu.get_cpu_capability() == "AVX512" and bool(_cpu_flags() & _NATIVE_BF16_FLAGS)


def resolve_amp(amp: bool | str, device: torch.device) -> bool:
    """Decide whether training runs under bf16 autocast.

    Parameters
    ----------
    amp : {"auto", True, False}
        ``"auto"``: where :func:`native_bf16` says it is faster. True: on any
        CUDA device and on CPUs with native bf16 (emulated bf16 is never
        used). False: never.
    device : torch.device
        Where training runs.

    Returns
    -------
    bool
        Whether to autocast.

    Raises
    ------
    ValueError
        For any other value of ``amp``.

    Examples
    --------
    >>> resolve_amp(False, torch.device("cpu"))
    False
    """
    if isinstance(amp, str):
        if amp != "auto":
            raise ValueError(f"amp must be 'auto', True or False, got {amp!r}")
        return native_bf16(device)
    if not amp:
        return False
    return device.type == "cuda" or native_bf16(device)
