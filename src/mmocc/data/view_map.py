"""The ``views`` option of the manifest, folder and pairs sources: which views to load, under which names.

The option takes one of three forms:

- a sequence of names: those views (manifest columns, file stems, camera
  folders), in that order, under their own names;
- a mapping ``{column: view}``: those columns, in that order, each loaded
  under its view name, e.g. ``{"left": "front", "right": "side"}`` so that a
  model trained on views ``front`` and ``side`` reads a manifest whose
  columns are ``left`` and ``right``;
- the same mapping as a string, ``"left:front,right:side"``, as given on the
  command line (``-O views=left:front,right:side``); an item without a colon
  keeps its name (``"left:front,side"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ViewsOption = str | Mapping[str, str] | Iterable[str] | None
"""What the ``views`` option of an image source accepts."""

_FORMS = "a list of names, a dict {column: view} or a string 'column:view,...'"


def view_map(views: Any) -> dict[str, str] | None:
    """Read a ``views`` option into ``{column: view name}``, in order.

    Parameters
    ----------
    views : str, mapping of str to str, iterable of str or None
        The option, in one of the forms of the module docstring.

    Returns
    -------
    dict of str to str or None
        The columns to load, each with the name of its view; None when
        ``views`` is None (the source's default views).

    Raises
    ------
    TypeError
        For a value of another type.
    ValueError
        For a malformed item (an empty name, or a string item with more
        than one colon), a column given twice or a view name given twice;
        the message names the item.

    Examples
    --------
    >>> view_map("left:front, right:side")
    {'left': 'front', 'right': 'side'}
    >>> view_map(["right", "left"])
    {'right': 'right', 'left': 'left'}
    """
    if views is None:
        return None
    if isinstance(views, str):
        items = [_string_item(item, views) for item in views.split(",")]
    elif isinstance(views, Mapping):
        items = list(views.items())
    elif isinstance(views, Iterable):
        items = [(name, name) for name in views]
    else:
        raise TypeError(f"views must be {_FORMS}, got {views!r}")
    columns: dict[str, str] = {}
    for column, view in items:
        if not (isinstance(column, str) and column and isinstance(view, str) and view):
            raise ValueError(f"views: malformed item {column!r}: {view!r}; names must be non-empty strings")
        if column in columns:
            raise ValueError(f"views: column {column!r} given twice")
        twice = [other for other, name in columns.items() if name == view]
        if twice:
            raise ValueError(f"views: view {view!r} given twice, for columns {twice[0]!r} and {column!r}")
        columns[column] = view
    return columns


def _string_item(item: str, text: str) -> tuple[str, str]:
    """Split one ``COLUMN:VIEW`` (or ``COLUMN``) item of the string form."""
    column, colon, view = (part.strip() for part in item.partition(":"))
    if not column or (colon and not view) or ":" in view:
        raise ValueError(
            f"views: malformed item {item.strip()!r} in {text!r}; expected COLUMN:VIEW, or COLUMN"
        )
    return column, view if colon else column
