"""Public home of cluster scoring (implemented in :mod:`mmocc.deploy.cluster`).

- :func:`score`: score a source on a Dask cluster, sharded, resumable, into one CSV.
- :func:`local_cluster`: a ``LocalCluster`` set up the way :func:`score` expects.
- :func:`shard_ranges`: the contiguous sample ranges the work is cut into.
"""

from mmocc.deploy.cluster import local_cluster, score, shard_ranges

__all__ = ["local_cluster", "score", "shard_ranges"]
