"""The ``mmocc cache`` commands: where decoded images are cached, and emptying that folder.

Only :mod:`click` and the standard library are imported here; the cache
module (numpy) is imported by the command bodies.
"""

from __future__ import annotations

from pathlib import Path

import click

_CACHE_DIR_HELP = "The cache folder.  [default: $MMOCC_CACHE_DIR, else the user cache folder]"


@click.group()
def cache() -> None:
    """Manage the cache of decoded images.

    train, score, evaluate and report keep the images they decode in a
    cache folder, keyed by each file's path, size, modification time,
    status-change time and inode and by the decoding settings, so that a
    file rewritten in any way is decoded again. --no-cache (or -O
    cache=false) neither reads nor writes it.
    """


@cache.command()
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help=_CACHE_DIR_HELP)
def clear(cache_dir: Path | None) -> None:
    """Remove every cached image array (only mmocc's cache entries, nothing else in the folder)."""
    from mmocc.data.cache import clear as clear_entries
    from mmocc.data.cache import resolve_cache_dir

    folder = resolve_cache_dir(cache_dir)
    removed, freed = clear_entries(folder)
    click.echo(f"removed {removed} cache entries ({freed / 2**20:.1f} MiB) from {folder}")
