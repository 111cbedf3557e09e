"""Loader options read from text: the spelling of integer-like labels."""

from pathlib import Path

import pytest

from mmocc.data.sources import find_label
from mmocc.datasets import load_folder, load_manifest

pytestmark = pytest.mark.usefixtures("ds_cache_dir")


def write_manifest(
    folder: Path, write_image, columns: tuple[str, str], labels: list[str], offset: int = 0
) -> Path:
    """A manifest ``sample_id,label,<columns>`` of one two-view sample per label, images under img/."""
    rows = [f"sample_id,label,{columns[0]},{columns[1]}"]
    for i, label in enumerate(labels):
        for view in columns:
            write_image(folder / "img" / f"{offset + i}_{view}.png", value=offset + 7 * i + len(view))
        rows.append(
            f"s{offset + i},{label},img/{offset + i}_{columns[0]}.png,img/{offset + i}_{columns[1]}.png"
        )
    path = folder / f"{columns[0]}_{columns[1]}_{offset}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


# --- labels read from text keep their spelling unless they are plain integers -----------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["007", "008", "007"], ["007", "008", "007"]),
        (["7", "8", "7"], [7, 8, 7]),
        (["7", "07", "7"], ["7", "07", "7"]),
        (["+1", "2", "2"], ["+1", "2", "2"]),
        (["-3", "0", "0"], [-3, 0, 0]),
    ],
)
def test_manifest_labels_keep_their_spelling(tmp_path, ds_write_image, labels, expected):
    path = write_manifest(tmp_path, ds_write_image, ("left", "right"), labels)
    ds = load_manifest(path, size=8)
    assert ds.labels.tolist() == expected
    assert find_label(ds, labels[0]) == expected[0]


def test_manifest_groups_and_folder_labels_keep_their_spelling(tmp_path, ds_write_image):
    rows = ["sample_id,label,group,v"]
    for i, (label, group) in enumerate([("001", "01"), ("002", "02")]):
        ds_write_image(tmp_path / f"{i}.png", value=i)
        ds_write_image(tmp_path / "tree" / label / f"s{i}" / "v.png", value=i)
        rows.append(f"s{i},{label},{group},{i}.png")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    ds = load_manifest(tmp_path / "m.csv", size=8)
    assert ds.labels.tolist() == ["001", "002"] and ds.groups.tolist() == ["01", "02"]
    assert load_folder(tmp_path / "tree", size=8).labels.tolist() == ["001", "002"]
