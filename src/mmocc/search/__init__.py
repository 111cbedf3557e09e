"""Nearest-neighbour search and memory-bank selection, shared by the k-NN and patch rules.

:mod:`~mmocc.search.index` is the one search engine (exact by torch or faiss
flat, approximate by faiss HNSW or by a PCA ranking re-ranked exactly,
leave-one-out by row or by owner); :mod:`~mmocc.search.coreset` selects a
bank's rows (greedy k-centre, exact or within cells);
:mod:`~mmocc.search.pruned` gives exact top-k image scores while searching only
the positions that can reach the top; :mod:`~mmocc.search.progress` shows
bank building and scoring on a terminal.
"""
