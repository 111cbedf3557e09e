"""Applying a fitted model to a source.

Chunk by chunk on one machine (:mod:`~mmocc.deploy.batch`), or sharded over a
Dask cluster (:mod:`~mmocc.deploy.cluster`).
"""
