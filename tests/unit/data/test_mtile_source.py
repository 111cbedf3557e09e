"""The Magnetic-tile source ``mtile:PATH``: runs of six lightings, the per-image option, masks, errors."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc.data.mtile import load_mtile, plan_mtile
from mmocc.data.sources import SOURCES, load_source, parse_source
from mmocc.data.streaming import plan_source
from mmocc.data.tasks import one_class_split
from mmocc.datasets import load_mtile as public_load_mtile

pytestmark = pytest.mark.usefixtures("ds_cache_dir")

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
MAGNETIC_TILE = SHARED_DATA / "magnetic-tile"

#: (lighting, number) of each image, per class. Free: tiles 10, 40, 70; an exp0 at 20; a repeated
#: lighting at 34-35 (runs 30 and 35); lightings going back at 52-53 (runs 50 and 53); lightings 1
#: and 2 missing at 60 (run 60). Blowhole: tile 100; lighting 5 missing at 110 (run 110).
LAYOUT = {
    "Free": [
        *((k, 9 + k) for k in range(1, 7)),
        (0, 20),
        *((k, 29 + k) for k in (1, 2, 3, 4, 5)),
        (5, 35),
        (6, 36),
        *((k, 39 + k) for k in range(1, 7)),
        (1, 50),
        (2, 51),
        (4, 52),
        (3, 53),
        (5, 54),
        (6, 55),
        (3, 60),
        (4, 61),
        (5, 62),
        *((k, 69 + k) for k in range(1, 7)),
    ],
    "Blowhole": [*((k, 99 + k) for k in range(1, 7)), *((k, 109 + k) for k in (1, 2, 3, 4, 6))],
}
#: The defect box (top, left, bottom, right) of every Blowhole image: near the top-left corner,
#: inside the centre square that crop keeps.
BOX = (1, 16, 4, 19)


def write_tile_image(folder: Path, light: int, number: int, defect: bool, mask: bool = True) -> None:
    """A grey tile image of a varying width, with a white defect box and its mask when ``defect``."""
    folder.mkdir(parents=True, exist_ok=True)
    width = 40 + number % 5
    array = np.full((16, width), 60, np.uint8)
    array[:, :2] = 90  # a tile edge, so that images differ from their padding
    if defect:
        array[BOX[0] : BOX[2], BOX[1] : BOX[3]] = 250
    Image.fromarray(array).save(folder / f"exp{light}_num_{number}.jpg", quality=100)
    if mask:
        Image.fromarray(np.where(array == 250, 255, 0).astype(np.uint8)).save(
            folder / f"exp{light}_num_{number}.png"
        )


@pytest.fixture
def tiles(tmp_path: Path) -> Path:
    root = tmp_path / "mt"
    for label, images in LAYOUT.items():
        for light, number in images:
            # Free masks are all-zero; those of odd numbers are missing, which is no defect
            defect = label != "Free"
            write_tile_image(root / f"MT_{label}" / "Imgs", light, number, defect, defect or number % 2 == 0)
    (root / "MT_Free" / "Imgs" / "notes.txt").write_text("ignored")
    (root / "SOURCE-README.md").write_text("ignored")
    return root


def load_quietly(root: Path, **options) -> tuple:
    """Load, returning the data and the messages of the warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_mtile(root, size=12, **options)
    return data, [str(w.message) for w in caught]


# --- runs -----------------------------------------------------------------------------------------


def test_complete_runs_become_six_view_tiles(tiles):
    data, _ = load_quietly(tiles)
    assert data.view_names == [f"light{k}" for k in range(1, 7)]
    assert data.ids.tolist() == ["Blowhole/num_100", "Free/num_10", "Free/num_40", "Free/num_70"]
    assert data.groups.tolist() == data.ids.tolist()
    assert data.labels.tolist() == ["Blowhole", "Free", "Free", "Free"]
    assert data.views["light3"].shape == (4, 1, 12, 12) and data.views["light3"].dtype == np.uint8
    assert data.paths["light3"][1].endswith("MT_Free/Imgs/exp3_num_12.jpg")
    assert set(data.masks) == set(data.view_names)
    assert all(masks[0].any() and not masks[1:].any() for masks in data.masks.values())
    assert data.mask_paths["light1"][1].endswith("exp1_num_10.png")
    assert data.mask_paths["light2"][1] == ""  # exp2_num_11: a defect-free image without a mask file


def test_broken_runs_are_dropped_and_counted_in_one_warning(tiles):
    _, messages = load_quietly(tiles)
    assert len(messages) == 1
    message = messages[0]
    assert "kept 4 complete tiles (24 of 46 images); dropped 22 images" in message
    assert "repeated index: 2 runs, 7 images (Free 2/7)" in message
    assert "out of order: 2 runs, 6 images (Free 2/6)" in message
    assert "missing light: 2 runs, 8 images (Blowhole 1/5, Free 1/3)" in message
    assert "light outside 1-6: 1 images (Free 1)" in message
    assert "per_image=True keeps every image" in message


def test_complete_folders_warn_nothing(tmp_path):
    for k in range(1, 7):
        write_tile_image(tmp_path / "MT_Free" / "Imgs", k, 10 + k, False)
    data, messages = load_quietly(tmp_path)
    assert len(data) == 1 and messages == []


# --- one image at a time --------------------------------------------------------------------------


def test_per_image_keeps_every_image_grouped_by_its_run(tiles):
    data, messages = load_quietly(tiles, per_image=True)
    assert messages == [] and len(data) == 46 and data.view_names == ["image"]
    by_id = dict(zip(data.ids.tolist(), data.groups.tolist(), strict=True))
    assert by_id["Free/exp3_num_12"] == "Free/num_10"  # a complete run: the tile
    assert by_id["Free/exp5_num_34"] == "Free/num_30" and by_id["Free/exp5_num_35"] == "Free/num_35"
    assert by_id["Free/exp0_num_20"] == "Free/exp0_num_20"  # in no run: the image itself
    assert by_id["Blowhole/exp6_num_115"] == "Blowhole/num_110"
    assert data.metadata["light"][data.ids.tolist().index("Free/exp4_num_52")] == 4
    assert len(set(data.groups.tolist())) == 4 + 6 + 1  # tiles, broken runs, the exp0 image
    blowhole = data.labels == "Blowhole"
    assert data.masks["image"][blowhole].any(axis=(1, 2)).all()
    assert not data.masks["image"][~blowhole].any()


def test_a_group_split_keeps_a_tiles_lightings_together(tiles):
    data, _ = load_quietly(tiles, per_image=True)
    task = one_class_split(data, "Free", split="group", train_fraction=0.5, seed=0)
    train_groups = set(data.groups[task.train_index].tolist())
    assert not train_groups & set(data.groups[task.test_index].tolist())
    in_train = np.isin(np.arange(len(data)), task.train_index)
    for tile in ("Free/num_10", "Free/num_40", "Free/num_70"):
        lightings = data.groups == tile
        assert lightings.sum() == 6 and len(set(in_train[lightings].tolist())) == 1


# --- sizes and masks ------------------------------------------------------------------------------


@pytest.mark.parametrize("resize", ["stretch", "pad", "crop"])
def test_masks_stay_aligned_with_their_images_in_every_resize_mode(tiles, resize):
    data, _ = load_quietly(tiles, per_image=True, resize=resize, classes="Blowhole")
    images, masks = data.views["image"][:, 0].astype(int), data.masks["image"]
    assert images.shape == (11, 12, 12) and masks.shape == (11, 12, 12)
    for image, mask in zip(images, masks, strict=True):
        assert mask.any() and mask[np.unravel_index(np.argmax(image), image.shape)]
        assert image[mask].mean() > image[~mask].mean() + 60
        if resize == "pad":  # 16 px high, 40-44 wide: the rows above and below the image are padding
            assert not mask[:3].any() and not mask[-3:].any() and not image[-3:].any()


def test_planning_equals_loading_and_streaming(tiles):
    for per_image in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = plan_source(f"mtile:{tiles}", size=8, per_image=per_image, resize="pad")
            loaded = load_source(f"mtile:{tiles}", size=8, per_image=per_image, resize="pad")
        chunks = list(plan.chunks(3, prefetch=1))
        assert plan.ids.tolist() == loaded.ids.tolist() == [i for c in chunks for i in c.ids.tolist()]
        assert plan.options["resize"] == "pad" and plan.options["mode"] == "L"
        decoded = plan.load()
        for view in loaded.view_names:
            assert np.array_equal(decoded.views[view], loaded.views[view])
            assert np.array_equal(decoded.masks[view], loaded.masks[view])
            assert np.array_equal(np.concatenate([c.masks[view] for c in chunks]), loaded.masks[view])
        assert decoded.groups.tolist() == loaded.groups.tolist()


def test_the_source_is_registered_once_with_its_planner():
    kind = SOURCES["mtile"]
    assert kind.load is load_mtile and kind.plan is plan_mtile and public_load_mtile is load_mtile
    assert parse_source("mtile:.").kind == "mtile"
    assert {"per_image", "classes", "resize", "size"} <= set(parse_source("mtile:.").option_names())


def test_classes_selects_folders(tiles):
    data, messages = load_quietly(tiles, classes=["Blowhole"])
    assert data.ids.tolist() == ["Blowhole/num_100"]
    assert "of 11 images" in messages[0] and "Free" not in messages[0]
    assert len(load_quietly(tiles, classes="Free, Blowhole", per_image=True)[0]) == 46


# --- errors ---------------------------------------------------------------------------------------


def test_an_unknown_class_is_named_with_a_suggestion(tiles):
    with pytest.raises(
        ValueError, match=r"no class 'Blowholes'; did you mean 'Blowhole'\? \(classes: Blowhole, Free\)"
    ):
        plan_mtile(tiles, classes="Free,Blowholes")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"per_image": "yes"}, r"per_image must be true or false, got 'yes'"),
        ({"classes": []}, r"classes must be class names"),
        ({"resize": "scale"}, r"resize must be one of 'stretch', 'pad', 'crop', got 'scale'"),
        ({"size": 0}, r"size must be a positive integer"),
    ],
)
def test_bad_options_are_named(tiles, options, match):
    with pytest.raises(ValueError, match=match):
        plan_mtile(tiles, **options)


def test_layout_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        plan_mtile(tmp_path / "absent")
    with pytest.raises(ValueError, match=r"no MT_<class> folders; the Magnetic-tile layout is"):
        plan_mtile(tmp_path)
    (tmp_path / "MT_Free").mkdir()
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'MT_Free'}: no Imgs/ folder")):
        plan_mtile(tmp_path)
    (tmp_path / "MT_Free" / "Imgs").mkdir()
    (tmp_path / "MT_Free" / "Imgs" / "tile.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Imgs: no images named exp<k>_num_<n>.jpg"):
        plan_mtile(tmp_path)


def test_no_complete_tile_is_an_error_after_the_warning(tmp_path):
    for k in (1, 2, 3):
        write_tile_image(tmp_path / "MT_Free" / "Imgs", k, k, False)
    with pytest.warns(UserWarning, match="kept 0 complete tiles"):
        with pytest.raises(ValueError, match=r"no complete tile .*per_image=True reads the images"):
            plan_mtile(tmp_path)
    assert len(plan_mtile(tmp_path, per_image=True)) == 3


def test_a_defective_image_without_its_mask_is_named(tiles):
    (tiles / "MT_Blowhole" / "Imgs" / "exp4_num_103.png").unlink()
    with pytest.warns(UserWarning):
        with pytest.raises(
            FileNotFoundError, match=r"tile Blowhole/num_100, view 'light4': mask file not found"
        ):
            load_mtile(tiles, size=8)
    data, messages = load_quietly(tiles, on_error="skip")
    assert "Blowhole/num_100" not in data.ids.tolist() and any("mask file not found" in m for m in messages)


# --- the real data --------------------------------------------------------------------------------


@pytest.mark.skipif(not MAGNETIC_TILE.is_dir(), reason=f"no Magnetic-tile data at {MAGNETIC_TILE}")
def test_real_free_and_blowhole_tiles():
    with pytest.warns(UserWarning, match=r"kept 165 complete tiles \(990 of 1067 images\)"):
        data = load_mtile(MAGNETIC_TILE, classes="Free,Blowhole", size=16)
    labels = data.labels.tolist()
    assert labels.count("Free") == 148 and labels.count("Blowhole") == 17
    assert data.view_names == [f"light{k}" for k in range(1, 7)] and data.views["light1"].shape[1:] == (
        1,
        16,
        16,
    )
    defect = np.stack([data.masks[view].any(axis=(1, 2)) for view in data.view_names], axis=1)
    blowhole = data.labels == "Blowhole"
    assert defect[blowhole].any(axis=1).all() and not defect[~blowhole].any()
    assert len(set(data.groups.tolist())) == len(data)
