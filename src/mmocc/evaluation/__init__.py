"""Evaluation: metrics, the experiment runner and its resume store, Markdown reports and plots.

- :mod:`mmocc.evaluation.metrics`: ROC AUC, P@n, recalls, as PyOD computes them;
- :mod:`mmocc.evaluation.config` and :mod:`mmocc.evaluation.models`: strict TOML experiment configs;
- :mod:`mmocc.evaluation.runner`: :func:`~mmocc.evaluation.runner.run_experiment`;
- :mod:`mmocc.evaluation.runs`: per-run records, fingerprints and resume, tidy CSV;
- :mod:`mmocc.evaluation.report`: the Table-I Markdown report;
- :mod:`mmocc.evaluation.plots`: ROC, histogram and loss figures (needs ``mmocc[plots]``).
"""
