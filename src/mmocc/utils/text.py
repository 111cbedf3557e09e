"""Text helpers: file-name-safe labels, did-you-mean suggestions, ``KEY=VALUE`` parsing.

This module imports only the standard library.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from collections.abc import Iterable
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def safe_name(label: Any) -> str:
    """Return a file-name-safe form of a label, distinct for distinct labels.

    Parameters
    ----------
    label : Any
        A class label or model name.

    Returns
    -------
    str
        ``str(label)`` when it holds only letters, digits, ``_``, ``.`` and
        ``-``; otherwise a cleaned form plus a short hash of the label.

    Examples
    --------
    >>> safe_name("obj_3"), safe_name("a/b")
    ('obj_3', 'a_b-3ec69c85')
    """
    text = str(label)
    if _SAFE.fullmatch(text):
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', text)}-{digest}"


def did_you_mean(word: str, choices: Iterable[Any]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``.

    Parameters
    ----------
    word : str
        The unknown word.
    choices : iterable
        The valid words (compared by their string form).

    Returns
    -------
    str
        A suffix for an error message.

    Examples
    --------
    >>> did_you_mean("seed", ["seeds", "plots"])
    "; did you mean 'seeds'?"
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_value(text: str) -> Any:
    """Read a command-line value as a TOML literal, else keep it as a string.

    Parameters
    ----------
    text : str
        E.g. ``"32"``, ``"0.5"``, ``"true"``, ``"[8, 4]"``, ``"logdet"``.

    Returns
    -------
    Any
        The int, float, bool, list or string.

    Examples
    --------
    >>> parse_value("[8, 4]"), parse_value("logdet"), parse_value("1e-3")
    ([8, 4], 'logdet', 0.001)
    """
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: Any, what: str) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict, values read by :func:`parse_value`.

    Parameters
    ----------
    items : iterable of str
        The assignments.
    what : str
        What they set, for error messages (e.g. ``"--param"``).

    Returns
    -------
    dict
        The parsed assignments, in order.

    Raises
    ------
    ValueError
        For an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def first_line(exc: BaseException) -> str:
    """Return the first line of an error's message, or its type's name when it has none.

    Parameters
    ----------
    exc : BaseException
        The error (a third-party library's, whose messages may run over many lines).

    Returns
    -------
    str
        One line.

    Examples
    --------
    >>> first_line(ValueError(chr(10).join(["bad input", "  at node 3"])))
    'bad input'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
