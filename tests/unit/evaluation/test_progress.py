"""`mmocc experiment` counts reused and new runs, estimates the time; its ETA ignores reused runs."""

import contextlib
import re

import pytest

from mmocc.cli import main
from mmocc.evaluation import runner
from mmocc.evaluation.runner import run_experiment

SRC = "synthetic:n_per_class=12,n_classes=3"
TINY = {"kind": "mmocc", "epochs": 1, "filters": [4, 4], "batch_size": 16}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(**overrides):
    base = {
        "seeds": [0, 1],
        "plots": False,
        "data": {"size": 8},
        "split": {"normal": [0, 2]},
        "models": {"multi": TINY, "left": {**TINY, "views": [0]}},
    }
    return {**base, **overrides}


class Bar:
    """Stands in for tqdm and records the bar's total and progress."""

    made: list["Bar"] = []
    external_write_mode = staticmethod(contextlib.nullcontext)

    def __init__(self, total, **kwargs):
        self.total, self.n = total, 0
        Bar.made.append(self)

    def update(self, n=1):
        self.n += n

    def refresh(self):
        pass

    def set_postfix_str(self, text, refresh=True):
        pass

    def close(self):
        pass


@pytest.fixture
def bars(monkeypatch):
    Bar.made = []
    monkeypatch.setattr(runner, "tqdm", Bar)
    return Bar.made


def run(cfg, out):
    messages = []
    result = run_experiment(cfg, SRC, out, progress=False, notify=messages.append)
    return result, messages


def interrupt_after(monkeypatch, n_runs):
    real = runner._execute

    def execute(*args, **kwargs):
        if execute.calls == n_runs:
            raise KeyboardInterrupt
        execute.calls += 1
        return real(*args, **kwargs)

    execute.calls = 0
    monkeypatch.setattr(runner, "_execute", execute)


def test_new_experiment_announces_its_runs_then_a_time_estimate(tmp_path, bars):
    result, messages = run(config(), tmp_path)
    assert result.n_runs == 8 and result.n_reused == 0
    assert messages[0] == "8 runs, all new"
    # Both models are timed after the first task (normal 0, seed 0): one estimate for the other 6 runs.
    assert len(messages) == 2 and re.fullmatch(r"about \d+ s left for the 6 remaining new runs", messages[1])
    (bar,) = bars
    assert bar.total == 8 and bar.n == 8


def test_resumed_experiment_counts_reused_runs_and_leaves_them_out_of_the_eta(tmp_path, bars, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            run(config(), tmp_path)
    bars.clear()
    result, messages = run(config(), tmp_path)
    assert result.n_runs == 8 and result.n_reused == 3
    # The 3 reused runs timed both models, so the estimate comes at once.
    assert len(messages) == 1
    assert re.fullmatch(
        rf"8 runs: 3 reused from {re.escape(str(tmp_path))}, 5 new; about \d+ s for them "
        r"\(timed by the reused runs\)",
        messages[0],
    )
    # The bar counts (and so rates and times) the 5 new runs only.
    (bar,) = bars
    assert bar.total == 5 and bar.n == 5

    bars.clear()
    _, messages = run(config(), tmp_path)
    assert messages == [f"8 runs, all reused from {tmp_path}"] and (bars[0].total, bars[0].n) == (0, 0)


def test_each_input_size_is_announced_and_reused_sizes_shrink_the_bar(tmp_path, bars):
    sizes = {"seeds": [0], "split": {"normal": [1]}, "models": {"multi": TINY}}
    run(config(**sizes, data={"sizes": [12]}), tmp_path)
    bars.clear()
    _, messages = run(config(**sizes, data={"sizes": [8, 12]}), tmp_path)
    assert messages == [
        "2 runs over 2 input sizes",
        "1 run at input size 8, all new",
        f"1 run at input size 12, all reused from {tmp_path}",
    ]
    (bar,) = bars
    assert bar.total == 1 and bar.n == 1


def test_cli_prints_the_plan_on_stderr_unless_quiet(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(
        "seeds = [0]\nplots = false\n[data]\nsize = 8\n[split]\nnormal = [0]\n"
        '[models.m]\nkind = "mmocc"\nepochs = 1\nfilters = [4, 4]\n'
    )
    args = ["experiment", str(path), "--data", SRC, "--out", str(tmp_path / "e")]

    def stderr(*extra):
        with pytest.raises(SystemExit) as info:
            main([*args, *extra])
        assert info.value.code == 0
        return capsys.readouterr().err

    err = stderr()
    assert err.splitlines()[0] == "1 run, all new" and "1 run (0 reused)" in err
    assert stderr("--seed", "1").splitlines()[0] == "1 run, all new"
    assert stderr("-q") == ""
