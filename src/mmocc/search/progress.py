"""Progress bars of bank building and patch scoring, shown the way training shows its own.

``verbose=None`` shows a bar when stderr is a terminal (as the estimator's
``verbose`` does for training), True always, False never.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def shows(verbose: bool | None) -> bool:
    """Return whether a bar is shown for ``verbose``.

    Parameters
    ----------
    verbose : bool or None
        True: always; False: never; None: when stderr is a terminal.

    Returns
    -------
    bool
        Whether to show progress.

    Examples
    --------
    >>> shows(True), shows(False)
    (True, False)
    """
    return sys.stderr.isatty() if verbose is None else bool(verbose)


def progress_bar(total: int, desc: str, unit: str, verbose: bool | None) -> Any:
    """Return a tqdm bar over ``total`` units on stderr, disabled (printing nothing) unless :func:`shows`.

    Parameters
    ----------
    total : int
        Units of work.
    desc : str
        What the bar counts (e.g. ``"coreset"``).
    unit : str
        The unit's name.
    verbose : bool or None
        As in :func:`shows`.

    Returns
    -------
    tqdm
        The bar; close it (or use it as a context manager) when done.
    """
    return tqdm(total=total, desc=desc, unit=unit, disable=not shows(verbose), leave=False, file=sys.stderr)
