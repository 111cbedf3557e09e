"""The ``mmocc`` command line.

:func:`main` (the console script) and the click group :data:`cli` are in
:mod:`mmocc.cli.main`; the commands in :mod:`mmocc.cli.commands` (train,
score, info), :mod:`mmocc.cli.evaluate`, :mod:`mmocc.cli.report`,
:mod:`mmocc.cli.export` (to ONNX) and :mod:`mmocc.cli.experiment` (demo, experiment);
shared options in :mod:`mmocc.cli.options`. Heavy modules (torch, the
estimators, scikit-learn, matplotlib) are imported inside the command bodies
only, so ``mmocc --help`` does not import them.
"""

from mmocc.cli.experiment import demo_config
from mmocc.cli.main import cli, main

__all__ = ["cli", "demo_config", "main"]
