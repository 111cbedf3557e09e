"""Hostile reruns of cluster scoring: a tampered record or part must never give exit 0 with other rows.

The setup of issue 22: 20 pairs in a manifest, chunks of 4, one worker, 4
shards. One run completes (module fixture, on an in-process cluster whose
worker is a thread: the driver's code is the same, and no worker process
has to import torch); each test tampers with a copy of it and reruns. The
property at the end: any mutation of ``shards.json`` or of a part gives
either the plain ``mmocc score`` CSV byte for byte or a one-line error.
``test_worker_errors_are_one_line_on_stderr`` goes through real worker
processes, on the command line.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("distributed")

from distributed import Client  # noqa: E402

from mmocc import MultimodalOCC, distributed  # noqa: E402
from mmocc.cli.main import cli  # noqa: E402
from mmocc.data.sources import load_source  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = 4
N_SAMPLES = 20


def _write_pairs(folder: Path, seed: int, n: int = N_SAMPLES) -> None:
    """Write ``folder/man.csv`` with ``n`` pairs of 12 px images under ``folder/img`` (relative paths)."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        row = {"sample_id": f"s{i:02d}"}
        for view in ("left", "right"):
            name = f"{i:02d}_{view}.png"
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / "img" / name)
            row[view] = f"img/{name}"
        rows.append(row)
    with open(folder / "man.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["sample_id", "left", "right"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """``data/man.csv`` (20 pairs), a model ``m.mmocc`` and the plain ``mmocc score`` CSV ``plain.csv``."""
    root = tmp_path_factory.mktemp("hostile-cluster")
    _write_pairs(root / "data", seed=0)
    data = load_source(str(root / "data" / "man.csv"), size=8, cache=False)
    MultimodalOCC(epochs=1, filters=(4, 4), random_state=0, device="cpu").fit(data).save(root / "m.mmocc")
    argv = ["score", root / "m.mmocc", "--data", root / "data" / "man.csv", "--out", root / "plain.csv"]
    result = CliRunner().invoke(
        cli, [str(a) for a in argv] + ["-O", "cache=false", "--batch-size", "4", "-q"]
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def client():
    """A cluster of one worker thread in this process."""
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as connected:
        yield connected


def rerun(root: Path, out: Path, client: Client, source: str | None = None, **kwargs: object) -> Path:
    """Score the manifest on the cluster into ``out``, as the issue's command does."""
    return distributed.score(
        root / "m.mmocc",
        source or str(root / "data" / "man.csv"),
        out,
        client=client,
        batch_size=BATCH,
        data_options={"cache": False},
        device="cpu",
        **kwargs,
    )


@pytest.fixture(scope="module")
def completed(root, client):
    """A completed run: 4 shards, its parts, its record."""
    out = root / "completed"
    assert rerun(root, out, client).read_bytes() == (root / "plain.csv").read_bytes()
    assert len(json.loads((out / "shards.json").read_text())["shards"]) == 4
    return out


@pytest.fixture
def run_copy(completed, tmp_path):
    """A copy of the completed run to tamper with."""
    return Path(shutil.copytree(completed, tmp_path / "run"))


def _set_shards(out: Path, shards: object) -> None:
    record = json.loads((out / "shards.json").read_text())
    (out / "shards.json").write_text(json.dumps({**record, "shards": shards}))


def _part(out: Path, index: int) -> Path:
    return out / "parts" / f"part-{index:05d}.csv"


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ([[0, 4], [4, 6], [8, 12], [12, 20]], r"shard 1 ends at 6, inside a chunk of 4"),
        ([[0, 4]], r"its shards cover samples 0-3, not all 20"),
        ([[0, 8], [4, 12], [8, 20]], r"shard 1 starts at 4, but the shards before end at 8 \(an overlap\)"),
        ([], r"its shards are \[\], not a list covering 20 samples"),
    ],
)
def test_shard_bounds_that_drop_or_repeat_rows_are_refused(root, client, run_copy, shards, message):
    _set_shards(run_copy, shards)
    _part(run_copy, 1).unlink()
    with pytest.raises(ValueError, match=f"shards.json: {message}") as error:
        rerun(root, run_copy, client)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        (["4", 8], r'shard 1 is \["4", 8\]: its bounds must be integers'),
        ([4, -8], r"shard 1 is \[4, -8\]: it must end after it starts"),
        ([4, 8, 12], r"shard 1 is \[4, 8, 12\], not two bounds \[start, stop\]"),
    ],
)
def test_malformed_shard_records_name_the_record_in_one_line(root, client, run_copy, bounds, message):
    _set_shards(run_copy, [[0, 4], bounds, [8, 12], [12, 20]])
    with pytest.raises(ValueError, match=f"shards.json: {message}") as error:
        rerun(root, run_copy, client)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (lambda data: b"".join(data.splitlines(keepends=True)[:2]), "has no integrity line"),  # header, 1 row
        (lambda data: data.splitlines(keepends=True)[0], "has no integrity line"),  # header only
        (lambda data: data[: len(data) // 2], "has no integrity line"),  # mid-row
        (lambda data: data.replace(b"s09", b"s99"), "does not match its checksum"),
    ],
)
def test_cut_or_edited_parts_are_scored_again_with_a_warning(root, client, run_copy, cut, reason):
    part = _part(run_copy, 2)
    part.write_bytes(cut(part.read_bytes()))
    with pytest.warns(UserWarning, match=f"part-00002.csv {reason}"):
        scores = rerun(root, run_copy, client)
    assert scores.read_bytes() == (root / "plain.csv").read_bytes()


def test_an_empty_part_0_is_named_part_0(root, client, run_copy):
    _part(run_copy, 0).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"1 part\(s\) in .* are scored again: part-00000.csv is empty$"):
        scores = rerun(root, run_copy, client)
    assert scores.read_bytes() == (root / "plain.csv").read_bytes()


def test_a_part_of_another_shard_is_not_taken_for_this_one(root, client, run_copy):
    shutil.copyfile(_part(run_copy, 1), _part(run_copy, 2))  # same size, valid on its own
    with pytest.warns(UserWarning, match="part-00002.csv holds samples 4-7, not this shard's"):
        scores = rerun(root, run_copy, client)
    assert scores.read_bytes() == (root / "plain.csv").read_bytes()


def test_a_relative_source_rerun_from_another_folder_is_refused(root, client, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(root / "data", first)
    _write_pairs(second, seed=1)  # the same ids, other images
    out = tmp_path / "out"
    monkeypatch.chdir(first)
    rerun(root, out, client, source="man.csv")
    monkeypatch.chdir(second)
    with pytest.raises(ValueError, match=r"records another run: source_resolved differs: .*first/man.csv"):
        rerun(root, out, client, source="man.csv")


def test_a_rerun_with_nothing_to_score_says_so(root, client, run_copy):
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = rerun(root, run_copy, client, log=lines.append)
    assert scores.read_bytes() == (root / "plain.csv").read_bytes()
    assert lines == [
        f"all 4 shards in {run_copy} were scored by an earlier run and pass their checks: nothing "
        "scored again"
    ]
    _part(run_copy, 3).unlink()
    rerun(root, run_copy, client, log=lines.append)
    assert lines[-1] == "resuming: 3 of 4 shards were scored by an earlier run; scoring the other 1"


def test_a_second_run_is_locked_out_and_a_dead_runs_lock_is_removed(root, client, run_copy):
    lock = run_copy / "run.lock"
    holder = {
        "pid": os.getppid(),
        "host": os.uname().nodename,
        "started": "2026-01-01 00:00:00",
        "token": "x",
    }
    lock.write_text(json.dumps(holder))
    with pytest.raises(
        ValueError, match=f"is in use by another run: process {os.getppid()} on host .* holds"
    ):
        rerun(root, run_copy, client)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock.write_text(json.dumps({**holder, "pid": int(dead.stdout)}))
    with pytest.warns(UserWarning, match="removed the stale lock"):
        rerun(root, run_copy, client)
    assert not lock.exists()


def test_skipped_samples_are_warned_once_on_the_cluster_as_locally(root, client, tmp_path):
    data = Path(shutil.copytree(root / "data", tmp_path / "data"))
    (data / "img" / "05_left.png").write_bytes(b"not a png")
    (data / "img" / "13_right.png").unlink()  # a missing file is listed, and skipped when decoded
    with pytest.warns(UserWarning) as local:
        load_source(str(data / "man.csv"), size=8, cache=False, on_error="skip")
    with pytest.warns(UserWarning) as remote:
        distributed.score(
            root / "m.mmocc",
            str(data / "man.csv"),
            tmp_path / "out",
            client=client,
            batch_size=BATCH,
            data_options={"cache": False, "on_error": "skip"},
            device="cpu",
        )
    assert [str(w.message) for w in remote] == [str(w.message) for w in local]
    assert str(remote[0].message).startswith("skipped 2 bad file(s) or sample(s):")


def test_worker_errors_are_one_line_on_stderr(root, tmp_path):
    """Real worker processes: a corrupt image is one error line, with no worker traceback or log."""
    data = Path(shutil.copytree(root / "data", tmp_path / "data"))
    (data / "img" / "05_left.png").write_bytes(b"not a png")
    command = [sys.executable, "-m", "mmocc", "score", str(root / "m.mmocc"), "--data", str(data / "man.csv")]
    options = ["--out", str(tmp_path / "out"), "--engine", "dask", "--workers", "1", "--batch-size", "4"]
    environment = {**os.environ, "MMOCC_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [*command, *options, "--threads", "1", "--device", "cpu", "-q"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert "mmocc: error: " in done.stderr and "s05" in done.stderr and "05_left.png" in done.stderr


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 25) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)
_PARTITIONS = st.sampled_from([[[0, 20]], [[0, 8], [8, 20]], [[0, 4], [4, 8], [8, 12], [12, 16], [16, 20]]])
_FIELDS = st.sampled_from(
    ["format", "source", "model_sha256", "n_samples", "listing_sha256", "batch_size", "x"]
)
_PART = st.integers(0, 3)
_MUTATIONS = st.one_of(
    st.tuples(st.just("shards"), _JSON | _PARTITIONS),
    st.tuples(st.just("field"), _FIELDS, _JSON),
    st.tuples(st.just("drop field"), _FIELDS),
    st.tuples(st.just("cut record"), st.integers(0, 700)),
    st.tuples(st.just("delete record")),
    st.tuples(st.just("cut part"), _PART, st.integers(0, 700)),
    st.tuples(st.just("flip byte"), _PART, st.integers(0, 700)),
    st.tuples(st.just("append"), _PART, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete part"), _PART),
    st.tuples(st.just("copy part"), _PART, _PART),
)


def _mutate(out: Path, mutation: tuple) -> None:
    """Apply one mutation to the run in ``out``."""
    kind, *args = mutation
    record = out / "shards.json"
    if kind in ("shards", "field", "drop field") and record.is_file():
        try:
            value = json.loads(record.read_text())
        except ValueError:
            return
        if isinstance(value, dict):
            if kind == "drop field":
                value.pop(args[0], None)
            else:
                value["shards" if kind == "shards" else args[0]] = args[-1]
        record.write_text(json.dumps(value))
    elif kind == "cut record" and record.is_file():
        record.write_bytes(record.read_bytes()[: args[0]])
    elif kind == "delete record":
        record.unlink(missing_ok=True)
    elif kind in ("cut part", "flip byte", "append") and _part(out, args[0]).is_file():
        part = _part(out, args[0])
        data = bytearray(part.read_bytes())
        if kind == "cut part":
            data = data[: args[1]]
        elif kind == "append":
            data += args[1]
        elif data:
            data[args[1] % len(data)] ^= 0x20
        part.write_bytes(bytes(data))
    elif kind == "delete part":
        _part(out, args[0]).unlink(missing_ok=True)
    elif kind == "copy part" and args[0] != args[1] and _part(out, args[0]).is_file():
        shutil.copyfile(_part(out, args[0]), _part(out, args[1]))


@given(mutations=st.lists(_MUTATIONS, min_size=1, max_size=3))
def test_any_tampering_gives_the_plain_csv_or_one_line_error(root, client, completed, tmp_path, mutations):
    out = tmp_path / "run"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(completed, out)
    for mutation in mutations:
        _mutate(out, mutation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scores = rerun(root, out, client)
        except (ValueError, TypeError, OSError) as error:
            assert str(error) and "\n" not in str(error), mutations
            event(f"{type(error).__name__}: {str(error).split(': ')[1][:30]}")
            return
    assert scores.read_bytes() == (root / "plain.csv").read_bytes(), mutations
    event("scores.csv as plain score")
