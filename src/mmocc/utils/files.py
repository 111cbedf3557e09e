"""Files written whole or not at all, and UTF-8 text read with errors that name the byte.

Atomic writes go to a temporary file in the target's folder, are synced and
renamed; stale temporaries of dead writers are removed. This module imports
only the standard library, so any module may use it without creating an
import cycle or pulling in torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

#: Name of the temporary file of an atomic write of ``<name>``:
#: ``.<name>.mmocc-<pid>-<host>-<8 random>.tmp``, where ``<host>`` (:data:`HOST_TAG`) tells
#: which machine's process ``<pid>`` is; names without it (older versions) count as this host's.
TEMP_NAME = re.compile(
    r"\..+\.mmocc-(?P<pid>[1-9][0-9]{0,6})-(?:(?P<host>[0-9a-f]{8})-)?[a-z0-9_]{8}\.tmp"
)
#: This machine in temporary-file names: 8 hex digits of a BLAKE2b hash of its host name.
HOST_TAG = hashlib.blake2b(socket.gethostname().encode("utf-8", "replace"), digest_size=4).hexdigest()
#: A temporary file untouched for this long is stale even when its writer's process id is in use.
STALE_AFTER_S = 3600.0

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _umask() -> int:
    """Return the process umask without changing it for longer than one call."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """Return the permission bits an atomic write gives ``path``: the existing file's, else open()'s."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def check_output_file(path: str | os.PathLike[str]) -> None:
    """Refuse to write ``path`` unless it is a regular file or does not exist.

    An atomic write renames a new file over ``path``; over a symbolic link,
    named pipe, device or socket that would replace the special file instead
    of writing to it, so those are refused. A symbolic link is refused rather
    than followed: whether to update the file it points to or to repoint it
    is the caller's choice, and following links planted in a shared folder
    is unsafe. Folders above ``path`` may be links.

    Parameters
    ----------
    path : str or path-like
        The file about to be written.

    Raises
    ------
    ValueError
        If ``path`` exists and is not a regular file; the message names it
        and what it is.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    if stat.S_ISLNK(mode):
        kind += f" to {os.readlink(path)}"
    raise ValueError(f"cannot write {os.fspath(path)}: it is {kind}, not a regular file")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (always True where signals cannot probe it).

    Parameters
    ----------
    pid : int
        A process id.

    Returns
    -------
    bool
        False only when no process ``pid`` exists.
    """
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def _is_stale(entry: os.DirEntry[str], now: float) -> bool:
    """Whether ``entry`` is a temporary file of an atomic write whose writer died or gave up.

    A writer on another host (a shared filesystem) cannot be probed by its
    process id, so its file is stale only once idle for :data:`STALE_AFTER_S`.
    """
    match = TEMP_NAME.fullmatch(entry.name)
    if match is None or not entry.is_file(follow_symlinks=False):
        return False
    idle = now - entry.stat(follow_symlinks=False).st_mtime
    if idle > STALE_AFTER_S:
        return True
    return match["host"] in (None, HOST_TAG) and not process_alive(int(match["pid"]))


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> None:
    """Delete the temporary files that killed atomic writes left in ``folder``.

    Only regular files named as :data:`TEMP_NAME` describes are considered,
    and of those only the ones whose writer process (on this host) no longer
    exists or that were not modified for :data:`STALE_AFTER_S` seconds. Files that cannot
    be removed (another user's, in a shared folder) are left alone.

    Parameters
    ----------
    folder : str or path-like
        The folder to clean.
    """
    now = time.time()
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with suppress(OSError):
                if _is_stale(entry, now):
                    os.unlink(entry.path)


def _blames_a_temporary(exc: OSError) -> bool:
    """Whether ``exc`` names no file or the temporary file of an atomic write."""
    return exc.filename is None or TEMP_NAME.fullmatch(os.path.basename(str(exc.filename))) is not None


def _commit(tmp: Path, path: Path) -> None:
    """Give ``tmp`` its final mode, sync it and rename it to ``path``."""
    os.chmod(tmp, _target_mode(path))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    check_output_file(path)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success sync it and rename it to ``path``.

    Use it for writers that take a file name (safetensors, matplotlib). The
    file appears whole or not at all: it is fsynced before :func:`os.replace`,
    and removed if the block raises (an interrupt included). It gets the mode a
    plain ``open`` would give (0666 less the umask), not ``mkstemp``'s 0600;
    replacing a file keeps that file's mode. The mode is set after the writer
    ran, since some writers (safetensors) recreate the file.

    ``path`` must be a regular file or not exist (see
    :func:`check_output_file`); it is checked before the block and again
    just before the rename, so nothing is ever renamed over a link or device.
    The temporary file is named ``.<name>.mmocc-<pid>-<host>-<random>.tmp``
    (:data:`TEMP_NAME`; the name cut to 50 characters); each write first
    removes the ones a killed writer on this host left in the same folder
    (see :func:`remove_stale_temporaries`), so writers on several hosts may
    share a folder.

    Parameters
    ----------
    path : str or path-like
        The destination; its folder is created if needed.

    Yields
    ------
    pathlib.Path
        The temporary file to write.

    Raises
    ------
    ValueError
        If ``path`` exists and is not a regular file.
    OSError
        If writing fails (a full disk, say); an error that names no file or
        the temporary file is raised again naming ``path``. The temporary
        file is gone and ``path`` untouched.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """
    path = Path(path)
    check_output_file(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        prefix = f".{path.name[:50]}.mmocc-{os.getpid()}-{HOST_TAG}-"
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        _commit(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if not _blames_a_temporary(exc):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and rename it to ``path`` on success.

    See :func:`atomic_path` for the guarantees.

    Parameters
    ----------
    path : str or path-like
        The destination; its folder is created if needed.
    mode : {"w", "wb"}, default "w"
        Text or binary writing.
    **kwargs
        Passed to :func:`open` (e.g. ``newline=""``, ``encoding``).

    Yields
    ------
    file object
        The open temporary file. If the block raises, ``path`` is untouched.
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path``, atomically.

    Parameters
    ----------
    path : str or path-like
        The destination file.
    data : Any
        A JSON-serialisable value.
    """
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def read_utf8(path: str | os.PathLike[str], *, bom: bool = False) -> str:
    r"""Read a UTF-8 text file, naming the file and the first bad byte when it is not UTF-8.

    Parameters
    ----------
    path : str or path-like
        The file.
    bom : bool, default False
        Accept (and drop) a leading UTF-8 byte-order mark.

    Returns
    -------
    str
        The text, newlines untranslated.

    Raises
    ------
    ValueError
        If the file is not valid UTF-8: the message names the file, the
        first bad byte, its offset in the file and its line.
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = bad.write_bytes(b"id\ncaf\xe9\n")
    >>> read_utf8(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: .../x.csv: not UTF-8: byte 0xe9 at offset 6 (line 2); save it as UTF-8
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        utf16 = "; it looks like UTF-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ""
        raise ValueError(
            f"{os.fspath(path)}: not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start} "
            f"(line {line}){utf16}; save it as UTF-8"
        ) from None
    return text.removeprefix("\ufeff") if bom else text
