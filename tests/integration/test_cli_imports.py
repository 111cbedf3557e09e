"""``mmocc --help`` must stay light: no torch, scikit-learn, matplotlib or PyOD."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "sklearn", "matplotlib", "pyod")

SCRIPT = """
import sys
from mmocc.cli import main
try:
    main({args!r})
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(sorted(name for name in {heavy!r} if name in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["experiment", "--help"], ["--version"]])
def test_help_imports_no_heavy_module(args):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(args=args, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"



def test_cli_lists_every_preset():
    from mmocc.cli.commands import PRESET_NAMES
    from mmocc.model.hyperparams import PRESETS

    assert sorted(PRESET_NAMES) == sorted(PRESETS)
