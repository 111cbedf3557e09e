import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mmocc.data.sources import find_label, load_source, parse_source
from mmocc.datasets import make_synthetic
from mmocc.evaluation import runner as experiment
from mmocc.evaluation.config import ConfigError, load_config
from mmocc.evaluation.metrics import METRIC_NAMES
from mmocc.evaluation.runner import RESULT_COLUMNS, run_experiment
from mmocc.utils.text import parse_value

SRC = "synthetic:n_per_class=12,n_classes=3"
TINY = {"epochs": 1, "filters": [4, 4], "batch_size": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**overrides):
    config = {
        "name": "tiny",
        "seeds": [0, 1],
        "plots": False,
        "data": {"size": 8},
        "split": {"normal": [0, 2]},
        "models": {
            "multi": {"kind": "mmocc", **TINY},
            "left": {"kind": "mmocc", "views": [0], **TINY},
            "knn": {"kind": "baseline", "detector": "knn", "fusion": "early"},
        },
    }
    config.update(overrides)
    return config


def read_results(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def metric_values(rows):
    return {
        (r["normal"], r["model"], r["seed"], r["size"], r["metric"]): r["value"]
        for r in rows
        if not r["metric"].endswith("_seconds")
    }


def test_runner_writes_every_artefact(tmp_path):
    result = run_experiment(tiny_config(plots=True), SRC, tmp_path, progress=False)
    assert result.n_runs == 2 * 2 * 3 and result.n_reused == 0

    rows = read_results(tmp_path / "results.csv")
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert len(rows) == 12 * (len(METRIC_NAMES) + 2)
    assert {r["metric"] for r in rows} == {*METRIC_NAMES, "fit_seconds", "score_seconds"}
    assert {r["normal"] for r in rows} == {"0", "2"} and {r["size"] for r in rows} == {"8"}
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows if r["metric"] in METRIC_NAMES)

    used = json.loads((tmp_path / "config.json").read_text())
    assert set(used["versions"]) >= {"mmocc", "torch", "numpy", "sklearn", "pyod", "python"}
    assert used["config"]["data"]["source"] == SRC
    assert used["config"]["models"]["left"] == {"kind": "mmocc", "views": [0], **TINY}
    assert used["data"]["n_samples"] == 36

    runs = sorted((tmp_path / "runs").glob("*.json"))
    assert len(runs) == 12 and len(list((tmp_path / "runs").glob("*.npz"))) == 12
    record = json.loads((tmp_path / "runs" / "size8__normal-0__multi__seed1.json").read_text())
    assert set(record["metrics"]) == set(METRIC_NAMES)
    assert record["n_train"] == 8 and record["n_test"] == 28 and record["n_test_anomalies"] == 24
    assert len(record["history"]) == 1 and {"loss", "compactness", "reconstruction"} <= set(
        record["history"][0]
    )
    with np.load(tmp_path / "runs" / "size8__normal-0__multi__seed1.npz", allow_pickle=False) as arrays:
        assert arrays["scores"].shape == arrays["y_test"].shape == arrays["ids"].shape == (28,)
        assert arrays["y_test"].sum() == 24

    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots == sorted(
        ["roc_size8_normal-0.png", "roc_size8_normal-2.png"]
        + [f"hist_size8_{m}.png" for m in ("multi", "left", "knn")]
        + [f"loss_size8_{m}.png" for m in ("multi", "left")]
    )
    assert all((tmp_path / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in plots)
    assert not list(tmp_path.rglob("*.tmp"))


def tables(markdown):
    """Map each heading of a Markdown document to the cells of the table under it."""
    found, heading = {}, None
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|"):
            found.setdefault(heading, []).append([cell.strip() for cell in line.strip("|").split("|")])
    return found


def test_table_has_the_shape_of_table_one_one_table_per_metric(tmp_path):
    result = run_experiment(tiny_config(), SRC, tmp_path, progress=False)
    markdown = (tmp_path / "table.md").read_text()
    assert markdown == result.markdown
    found = tables(markdown)
    assert list(found) == ["Recall", "P@n", "ROC AUC", "Normal recall"]
    for metric, table in found.items():
        extra = ["Anomaly share"] if metric == "P@n" else []
        assert table[0] == ["Normal class", "multi", "left", "knn", *extra]
        body = table[2:]
        assert [row[0] for row in body] == ["0", "2", "**Average**"]
        assert all(len(row) == len(table[0]) and all("±" in cell for cell in row[1:4]) for row in body)
    # The Average row is the mean over classes, then over seeds.
    auc = [result.values("multi", "roc_auc", normal) for normal in (0, 2)]
    mean = np.mean(np.mean(auc, axis=0))
    assert found["ROC AUC"][-1][1].startswith(f"{mean:.3f} ± ")
    # 12 per class, 8 train: 4 normals and 24 anomalies in each test set.
    assert [row[-1] for row in found["P@n"][2:]] == ["0.857"] * 3
    assert "A random ranking gets\nP@n ≈ the share of anomalies in the test set" in markdown
    assert max(len(line) for line in markdown.splitlines()) < 110


def test_one_seed_table_shows_means_only(tmp_path):
    result = run_experiment(tiny_config(seeds=[3], table_metrics=["roc_auc"]), SRC, tmp_path, progress=False)
    rows = [line for line in result.markdown.splitlines() if line.startswith("| ")]
    assert "\n## ROC AUC\n" in result.markdown
    assert rows[0] == "| Normal class | multi | left | knn |"
    assert "±" not in result.markdown and "P@n" not in result.markdown


def test_rerun_gives_identical_results(tmp_path):
    run_experiment(tiny_config(), SRC, tmp_path / "a", progress=False)
    run_experiment(tiny_config(), SRC, tmp_path / "b", progress=False)
    first = metric_values(read_results(tmp_path / "a" / "results.csv"))
    second = metric_values(read_results(tmp_path / "b" / "results.csv"))
    assert first == second and len(first) == 12 * len(METRIC_NAMES)


def test_interrupted_experiment_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    real = experiment._execute
    calls = []

    def interrupted(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "_execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_config(), SRC, tmp_path, progress=False)
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    assert len(finished) == 2 * 5 and not (tmp_path / "results.csv").exists()

    calls.clear()
    monkeypatch.setattr(experiment, "_execute", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    result = run_experiment(tiny_config(), SRC, tmp_path, progress=False)
    assert len(calls) == 12 - 5 and result.n_reused == 5 and result.n_runs == 12
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())

    fresh = run_experiment(tiny_config(), SRC, tmp_path / "fresh", progress=False)
    assert metric_values(read_results(tmp_path / "results.csv")) == metric_values(
        read_results(fresh.out / "results.csv")
    )


def test_changed_model_is_recomputed_and_others_reused(tmp_path, monkeypatch):
    run_experiment(tiny_config(), SRC, tmp_path, progress=False)
    changed = tiny_config()
    changed["models"]["left"] = {"kind": "mmocc", "views": [0], **TINY, "epochs": 2}
    calls = []
    real = experiment._execute
    monkeypatch.setattr(experiment, "_execute", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    result = run_experiment(changed, SRC, tmp_path, progress=False)
    assert calls == ["left"] * 4 and result.n_reused == 8


def test_sizes_and_metadata_split(tmp_path):
    config = tiny_config(
        seeds=[0],
        data={"sizes": [8, 12]},
        split={"normal": [1], "kind": "metadata", "key": "yaw", "below": 0.0},
    )
    config["models"] = {"knn": {"kind": "baseline", "detector": "knn"}}
    result = run_experiment(config, SRC, tmp_path, progress=False)
    assert result.n_runs == 2
    assert "## Input size 8" in result.markdown and "## Input size 12" in result.markdown
    assert "## Average over classes by input size" in result.markdown
    average = tables(result.markdown.split("## Average over classes by input size")[1])
    assert [row[0] for row in average["ROC AUC"]] == ["Input size", ":---", "8", "12"]
    assert average["P@n"][0] == ["Input size", "knn", "Anomaly share"]
    dataset = load_source(SRC, size=8)
    expected = int(((dataset.labels == 1) & (dataset.metadata["yaw"] < 0)).sum())
    for size in (8, 12):
        record = json.loads((tmp_path / "runs" / f"size{size}__normal-1__knn__seed0.json").read_text())
        assert record["n_train"] == expected


def test_in_memory_dataset_and_string_labels(tmp_path):
    dataset = make_synthetic(n_per_class=10, n_classes=2, size=8)
    dataset.labels = np.where(dataset.labels == 0, "cat", "dog")
    config = tiny_config(seeds=[0], data={}, split={"normal": ["dog"]})
    config["models"] = {"knn": {"kind": "baseline", "detector": "knn"}}
    result = run_experiment(config, dataset, tmp_path, progress=False)
    assert {row["normal"] for row in result.rows} == {"dog"} and {row["size"] for row in result.rows} == {8}
    assert "in-memory dataset" in result.markdown


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": [0]}, "unknown key 'seed' in the top level; did you mean 'seeds'?"),
        (
            {"split": {"train_frac": 0.5}},
            "unknown key 'train_frac' in \\[split\\]; did you mean 'train_fraction'?",
        ),
        ({"split": {"kind": "randon"}}, "kind 'randon' is not valid; did you mean 'random'?"),
        ({"split": {"key": "yaw"}}, "key is only used with kind = 'metadata'"),
        ({"split": {"kind": "metadata", "key": "yaw"}}, "needs a number below"),
        ({"models": {"m": {"kind": "mmoc"}}}, "kind 'mmoc' is not valid; did you mean 'mmocc'?"),
        ({"models": {"m": {"preset": "paper"}}}, "\\[models.m\\] needs kind"),
        ({"models": {"m": {"kind": "mmocc", "epoch": 3}}}, "unknown key 'epoch' in \\[models.m\\].*'epochs'"),
        ({"models": {"m": {"kind": "baseline", "detectr": "knn"}}}, "'detectr'.*did you mean 'detector'"),
        ({"models": {"m": {"kind": "baseline", "detector": "knm"}}}, "detector 'knm'; did you mean 'knn'"),
        ({"models": {"m": {"kind": "mmocc", "preset": "papper"}}}, "preset='papper' is not valid"),
        ({"models": {"m": {"kind": "mmocc", "random_state": 1}}}, "must not set 'random_state'"),
        ({"models": {"m": {"kind": "mmocc", "views": ["a", 1.5]}}}, "views must be a list"),
        ({"models": {"a b": {"kind": "mmocc"}}}, "model name 'a b'"),
        ({"models": {}}, "has no models"),
        ({"seeds": [0, 0]}, "duplicates"),
        ({"table_metrics": ["roc"]}, "unknown metric 'roc'; did you mean 'roc_auc'?"),
        ({"data": {"size": 8, "sizes": [8]}}, "both size and sizes"),
    ],
)
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_config(**change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": {"sise": 8}}, "the synthetic source has no option 'sise'; did you mean 'size'?"),
        ({"split": {"normal": [7]}}, "label '7' is not in the data.*labels: 0, 1, 2"),
        (
            {"split": {"kind": "metadata", "key": "angle", "below": 1}},
            "key 'angle' is not in the dataset's metadata",
        ),
        ({"models": {"m": {"kind": "mmocc", "views": [2]}}}, "view position 2 is out of range"),
        ({"models": {"m": {"kind": "mmocc", "views": ["dorsl"]}}}, "did you mean 'dorsal'"),
    ],
)
def test_errors_found_against_the_data(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        run_experiment(tiny_config(**change), SRC, tmp_path, progress=False)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seeds = [0,\n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text('plot = true\n[models.m]\nkind = "mmocc"\n')
    with pytest.raises(ConfigError, match="typo.toml: unknown key 'plot'.*did you mean 'plots'"):
        load_config(typo)
    with pytest.raises(ConfigError, match="no data source"):
        run_experiment(tiny_config(), None, tmp_path / "out", progress=False)


def test_shipped_configs_are_valid():
    configs = Path(__file__).resolve().parents[2] / "configs"
    names = {path.name: load_config(path) for path in configs.glob("*.toml")}
    assert {"paper_table1.toml", "paper_table3.toml", "coil20.toml"} <= set(names)
    table1 = names["paper_table1.toml"]
    assert table1.seeds == (0, 1, 2) and table1.data.sizes == (32,) and table1.split.train_fraction == 0.66
    assert {m.name: m.params.get("views") for m in table1.models.values()} == {
        "multimodal": None,
        "unimodal_left": [0],
        "unimodal_right": [1],
    }
    assert all(m.params["preset"] == "paper" for m in table1.models.values())
    assert names["paper_table3.toml"].data.sizes == (32, 64, 128, 256)


def test_parse_source_kinds(tmp_path):
    (tmp_path / "m.csv").write_text("sample_id,label,a\n")
    (tmp_path / "f").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert parse_source("synthetic").kind == "synthetic"
    assert parse_source("synthetic:n_per_class=4,size=8").options == {"n_per_class": 4, "size": 8}
    assert parse_source(str(tmp_path / "m.csv")).kind == "manifest"
    assert parse_source(f"manifest:{tmp_path / 'm.csv'}").kind == "manifest"
    assert parse_source(str(tmp_path / "f")).kind == "folder"
    assert parse_source(f"turntable:{tmp_path / 'f'}").path == tmp_path / "f"
    with pytest.raises(ValueError, match="unknown data source kind 'turntabel'.*did you mean 'turntable'"):
        parse_source(f"turntabel:{tmp_path / 'f'}")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        parse_source(f"mfeat:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        parse_source(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="needs a path: folder:PATH"):
        parse_source("folder:")
    with pytest.raises(ValueError, match="cannot tell the kind"):
        parse_source(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="expects KEY=VALUE"):
        parse_source("synthetic:size")


def test_find_label_matches_by_string_form():
    dataset = load_source("synthetic:n_per_class=3,n_classes=2", size=4)
    assert find_label(dataset, "1") == 1 and find_label(dataset, 0) == 0
    with pytest.raises(ValueError, match="label 'x' is not in the data; labels: 0, 1"):
        find_label(dataset, "x")


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("false") is False and parse_value("a,b") == "a,b"
