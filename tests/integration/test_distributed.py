"""Scoring on a Dask cluster: a real LocalCluster of 2 one-thread worker processes, shared by the module.

The cluster output must equal single-process ``mmocc score`` byte for byte,
through the command line and the API; a rerun skips the finished shards; a
record of another run is refused; a missing dask names the install command.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("distributed")

from distributed import Client  # noqa: E402

from mmocc import MultimodalOCC, distributed  # noqa: E402
from mmocc.cli.main import cli  # noqa: E402
from mmocc.data.sources import load_source  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = ["--batch-size", "5"]


@pytest.fixture(scope="module")
def client():
    with distributed.local_cluster(2) as cluster, Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder root/<label>/<sample>/{left,right}.png of 3 labels x 8 samples, and a model of 'bee'."""
    root = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(0)
    for label, offset in (("ant", 0), ("bee", 80), ("fly", 160)):
        for i in range(8):
            for view in ("left", "right"):
                path = root / "data" / label / f"s{i}" / f"{view}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((rng.integers(0, 60, (12, 12, 3)) + offset).astype(np.uint8)).save(path)
    data = load_source(str(root / "data"), size=8, cache=False)
    clf = MultimodalOCC(epochs=1, filters=(4, 4), random_state=0, device="cpu")
    clf.fit(data[data.labels == "bee"]).save(root / "m.mmocc")
    return root


@pytest.fixture(scope="module")
def local_csv(workdir):
    """Single-process ``mmocc score`` of the folder, in chunks of 5."""
    out = workdir / "local.csv"
    invoke(workdir, "--out", out, "-q")
    return out.read_bytes()


def invoke(workdir: Path, *args: object) -> str:
    model, data = workdir / "m.mmocc", workdir / "data"
    argv = ["score", model, "--data", data, "-O", "cache=false", "--device", "cpu", *BATCH, *args]
    result = CliRunner().invoke(cli, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    return result.output


def api_score(workdir: Path, out: Path, client: Client, **kwargs: object) -> Path:
    return distributed.score(
        workdir / "m.mmocc",
        str(workdir / "data"),
        out,
        client=client,
        batch_size=5,
        data_options={"cache": False},
        device="cpu",
        **kwargs,
    )


def test_cli_on_the_cluster_writes_the_single_process_csv(workdir, client, local_csv):
    out = workdir / "cli"
    message = invoke(workdir, "--out", out, "--engine", "dask", "--scheduler", client.scheduler.address)
    assert (out / "scores.csv").read_bytes() == local_csv
    assert f"written to {out / 'scores.csv'}" in message
    record = json.loads((out / "shards.json").read_text())
    assert record["n_samples"] == 24 and record["batch_size"] == 5
    # 2 workers x 4 shards wanted, but 24 samples make 5 chunks of 5: one shard per chunk.
    assert record["shards"] == [[0, 5], [5, 10], [10, 15], [15, 20], [20, 24]]
    assert sorted(p.name for p in (out / "parts").glob("part-*.csv")) == [
        f"part-0000{i}.csv" for i in range(5)
    ]


def test_api_resumes_only_the_missing_shard(workdir, client, local_csv):
    out = workdir / "api"
    assert api_score(workdir, out, client, n_shards=2).read_bytes() == local_csv
    parts = sorted((out / "parts").glob("part-*.csv"))
    assert len(parts) == 2
    first = parts[0].stat().st_mtime_ns
    parts[1].unlink()
    (out / "scores.csv").unlink()
    assert api_score(workdir, out, client).read_bytes() == local_csv
    assert parts[0].stat().st_mtime_ns == first and parts[1].is_file()


def test_a_record_of_another_run_is_refused_until_restart(workdir, client, local_csv):
    out = workdir / "other"
    api_score(workdir, out, client, n_shards=2)
    record = (out / "shards.json").read_text()
    (out / "shards.json").write_text(json.dumps({**json.loads(record), "model_sha256": "0" * 64}))
    with pytest.raises(ValueError, match=r"shards.json records another run: model_sha256 differs"):
        api_score(workdir, out, client)
    (out / "shards.json").write_text(record)
    with pytest.raises(ValueError, match=r"records another run: 2 shards, 3 asked for"):
        api_score(workdir, out, client, n_shards=3)
    assert api_score(workdir, out, client, n_shards=3, resume=False).read_bytes() == local_csv
    assert len(list((out / "parts").glob("part-*.csv"))) == 3


def test_shard_ranges_cover_every_sample_on_chunk_bounds():
    for n, batch, shards in [(1, 4, 3), (24, 5, 2), (100, 7, 6), (4096, 4096, 8)]:
        ranges = distributed.shard_ranges(n, batch, shards)
        assert [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(start % batch == 0 and stop > start for start, stop in ranges)


def test_missing_dask_names_the_extra(monkeypatch, workdir):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r'pip install "mmocc\[cluster\]"'):
        distributed.score(workdir / "m.mmocc", str(workdir / "data"), workdir / "none")
    result = CliRunner().invoke(
        cli,
        [
            "score",
            str(workdir / "m.mmocc"),
            "--data",
            str(workdir / "data"),
            "--out",
            "x",
            "--engine",
            "dask",
        ],
    )
    assert isinstance(result.exception, ModuleNotFoundError)


def test_cluster_options_need_the_dask_engine(workdir):
    result = CliRunner().invoke(
        cli,
        ["score", str(workdir / "m.mmocc"), "--data", str(workdir / "data"), "--out", "x", "--workers", "2"],
    )
    assert result.exit_code == 2 and "applies only with --engine dask" in result.output
