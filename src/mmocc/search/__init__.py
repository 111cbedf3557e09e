"""Nearest-neighbour search and memory-bank selection, shared by the k-NN and patch rules.

:mod:`~mmocc.search.index` is the one search engine (exact by torch or faiss
flat, approximate by faiss HNSW, leave-one-out by row or by owner);
:mod:`~mmocc.search.coreset` selects a bank's rows (greedy k-centre);
:mod:`~mmocc.search.pruned` gives exact top-k image scores while searching only
the positions that can reach the top.
"""
