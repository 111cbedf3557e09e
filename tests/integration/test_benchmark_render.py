"""The benchmark Markdown files are exactly what ``benchmarks/render.py`` makes of their committed records."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def render() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("render")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _topics() -> list[str]:
    return sorted(path.stem for path in (BENCHMARKS / "results").glob("*.json"))


def test_every_record_file_is_a_known_topic_with_a_committed_markdown_file(render: ModuleType) -> None:
    assert _topics(), "no records under benchmarks/results"
    for topic in _topics():
        assert topic in render.TOPICS
        assert (BENCHMARKS / render.TOPICS[topic]).is_file()


@pytest.mark.parametrize("topic", _topics())
def test_markdown_equals_its_records_rendered(render: ModuleType, topic: str, tmp_path: Path) -> None:
    written = render.render(topic, BENCHMARKS / "results", tmp_path)
    committed = BENCHMARKS / render.TOPICS[topic]
    assert written.read_bytes() == committed.read_bytes(), (
        f"{committed.name} differs from its records: edit benchmarks/templates/{topic}.md or rerun "
        f"the benchmark, then python benchmarks/render.py {topic}"
    )


def _drop_a_field(records: list[dict], field: str) -> tuple[list[dict], str]:
    """A copy of ``records`` without ``field`` in the first record that has it; and that record's kind."""
    records = copy.deepcopy(records)
    record = next(r for r in records if field in r)
    del record[field]
    return records, record["kind"]


@pytest.mark.parametrize(("topic", "field"), [
    ("results", "seconds"), ("results", "machine"), ("speed", "pairs_per_s"), ("speed", "exact_vs_old"),
    ("ablations", "ratio"), ("calibration", "n_reference"), ("defects", "seconds"), ("threads", "spin"),
    ("real", "aupro_loaded"), ("real", "partial"),
])
def test_a_missing_field_names_the_field_and_the_topic(render: ModuleType, topic: str, field: str) -> None:
    records = json.loads((BENCHMARKS / "results" / f"{topic}.json").read_text(encoding="utf-8"))
    broken, kind = _drop_a_field(records, field)
    with pytest.raises(render.RecordError) as error:
        render.render_text(render.Topic(topic, broken))
    assert f"{topic}.json" in str(error.value) and repr(field) in str(error.value)
    assert repr(kind) in str(error.value)


def test_a_missing_nested_field_and_a_missing_kind_are_named(render: ModuleType) -> None:
    records = json.loads((BENCHMARKS / "results" / "results.json").read_text(encoding="utf-8"))
    broken = copy.deepcopy(records)
    del broken[0]["machine"]["torch"]
    nested = r"results\.json record 0 .*'machine'.*missing field 'torch'"
    with pytest.raises(render.RecordError, match=nested):
        render.render_text(render.Topic("results", broken))
    with pytest.raises(render.RecordError, match=r"results\.json record 1: missing field 'kind'"):
        render.Topic("results", [records[0], {"study": "main"}])
    with pytest.raises(render.RecordError, match=r"results\.json: no record of kind 'run'"):
        render.render_text(render.Topic("results", records[1:]))


def test_template_blocks_and_format_specs(render: ModuleType, tmp_path: Path, monkeypatch) -> None:
    text = "About this file.\n@@ one\nA {x:.2f|none} {ok:yes|no}\n\n@@ two\n{{b}}\n"
    (tmp_path / "demo.md").write_text(text, encoding="utf-8")
    monkeypatch.setattr(render, "TEMPLATES", tmp_path)
    t = render.Template("demo")
    assert t.blocks == {"one": "A {x:.2f|none} {ok:yes|no}\n", "two": "{{b}}"}
    assert t("one", x=1.234, ok=True) == "A 1.23 yes\n"
    assert t("one", x=None, ok=False) == "A none no\n"
    assert t("two") == "{b}"
    with pytest.raises(render.RecordError, match="block 'one': no value for 'ok'"):
        t("one", x=1.0)
