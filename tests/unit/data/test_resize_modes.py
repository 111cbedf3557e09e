"""The resize option: stretch (the default), pad and crop, for images, their masks and the cache."""

import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import mmocc
from mmocc.cli import main
from mmocc.cli.options import parse_data_options
from mmocc.data import images
from mmocc.data.images import (
    RESIZE_MODES,
    check_image_options,
    decode_files,
    decode_image,
    decode_mask,
    fit_mask,
    resize_mask,
    square_geometry,
)
from mmocc.data.sources import SOURCES, load_source, parse_source
from mmocc.data.streaming import plan_source
from mmocc.deploy.batch import model_data_options

pytestmark = pytest.mark.usefixtures("ds_cache_dir")

KINDS = ["manifest", "folder", "pairs", "turntable", "mvtec", "mtile"]


def write_pair(folder: Path, name: str, width: int, height: int, box: tuple[int, int, int, int]) -> Path:
    """A black ``width`` x ``height`` image with a white box (top, left, bottom, right), and its mask."""
    folder.mkdir(parents=True, exist_ok=True)
    array = np.zeros((height, width), np.uint8)
    top, left, bottom, right = box
    array[top:bottom, left:right] = 255
    Image.fromarray(array).save(folder / f"{name}.png")
    Image.fromarray(array).save(folder / f"{name}_mask.png")
    return folder / f"{name}.png"


def centroid(weights: np.ndarray) -> np.ndarray:
    """The weighted mean (row, column) of a 2-D array."""
    rows, cols = np.indices(weights.shape)
    total = weights.sum()
    return np.array([(rows * weights).sum() / total, (cols * weights).sum() / total])


def assert_aligned(image: np.ndarray, mask: np.ndarray) -> None:
    """The brightest pixel is a defect, and the defect sits where the image's bright box does."""
    assert mask.any()
    assert mask[np.unravel_index(np.argmax(image), image.shape)]
    bright = np.clip(image.astype(float) - 64, 0, None)
    assert np.abs(centroid(bright) - centroid(mask.astype(float))).max() <= 1.0


# --- geometry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "resize", "expected"),
    [
        (200, 100, "stretch", ((64, 64), (0, 0))),
        (200, 100, "pad", ((32, 64), (16, 0))),
        (100, 200, "pad", ((64, 32), (0, 16))),
        (200, 100, "crop", ((64, 128), (0, -32))),
        (100, 200, "crop", ((128, 64), (-32, 0))),
        (50, 50, "pad", ((64, 64), (0, 0))),
        (50, 50, "crop", ((64, 64), (0, 0))),
        (1000, 3, "pad", ((1, 64), (31, 0))),
    ],
)
def test_square_geometry(width, height, resize, expected):
    assert square_geometry(width, height, 64, resize) == expected


def test_resize_mask_to_a_rectangle_keeps_every_defect():
    mask = np.zeros((40, 90), bool)
    mask[39, 0] = mask[0, 89] = True
    small = resize_mask(mask, (4, 9))
    assert small.shape == (4, 9) and np.argwhere(small).tolist() == [[0, 8], [3, 0]]


@pytest.mark.parametrize("resize", RESIZE_MODES)
def test_fit_mask_pads_with_no_defect_and_crops_like_the_image(resize):
    mask = np.ones((10, 40), bool)
    fitted = fit_mask(mask, 8, resize)
    assert fitted.shape == (8, 8)
    expected_rows = {"stretch": range(8), "pad": range(3, 5), "crop": range(8)}[resize]
    assert np.flatnonzero(fitted.any(axis=1)).tolist() == list(expected_rows)
    assert fitted[list(expected_rows)].all()


# --- images ---------------------------------------------------------------------------------------


def test_stretch_is_the_default_and_what_decoding_did_before(tmp_path, ds_write_image):
    path = ds_write_image(tmp_path / "a.png", size=(30, 20))
    expected = np.asarray(Image.open(path).convert("RGB").resize((8, 8), Image.Resampling.LANCZOS))
    assert np.array_equal(decode_image(path, 8, "RGB"), expected.transpose(2, 0, 1))
    assert np.array_equal(decode_image(path, 8, "RGB", "stretch"), decode_image(path, 8, "RGB"))


def test_pad_keeps_the_aspect_ratio_and_pads_with_zeros(tmp_path, ds_write_image):
    path = ds_write_image(tmp_path / "wide.png", value=5, size=(10, 40), mode="L")  # 40 wide, 10 high
    padded = decode_image(path, 16, "L", "pad")[0]
    content = np.asarray(Image.open(path).resize((16, 4), Image.Resampling.LANCZOS))
    assert padded.shape == (16, 16) and content.min() > 0
    assert np.array_equal(padded[6:10], content)
    assert not padded[:6].any() and not padded[10:].any()


def test_crop_keeps_the_centre_of_the_image_scaled_to_cover(tmp_path, ds_write_image):
    path = ds_write_image(tmp_path / "tall.png", size=(40, 10), mode="L")  # 10 wide, 40 high
    cropped = decode_image(path, 8, "L", "crop")[0]
    scaled = np.asarray(Image.open(path).resize((8, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(cropped, scaled[12:20])


@pytest.mark.parametrize("resize", RESIZE_MODES)
@pytest.mark.parametrize(
    ("width", "height", "box", "crop_keeps"),
    [
        (60, 24, (0, 0, 3, 3), False),  # top-left corner of a wide image
        (60, 24, (21, 57, 24, 60), False),  # bottom-right corner
        (24, 60, (0, 21, 3, 24), False),  # top-right corner of a tall image
        (60, 24, (0, 19, 3, 22), True),  # top edge, at the top-left corner of the crop window
        (24, 60, (57, 0, 60, 3), False),  # bottom-left corner of a tall image
        (24, 60, (40, 0, 43, 3), True),  # left edge, at the bottom-left corner of the crop window
    ],
)
def test_a_defect_near_a_corner_stays_aligned_with_its_image(
    tmp_path, resize, width, height, box, crop_keeps
):
    path = write_pair(tmp_path, "x", width, height, box)
    image = decode_image(path, 16, "L", resize)[0]
    mask = decode_mask(tmp_path / "x_mask.png", 16, path, resize)[0] == 1
    if resize == "crop" and not crop_keeps:  # cropped away: the defect with its pixels
        assert image.max() < 64 and not mask.any()
    else:
        assert_aligned(image, mask)


def test_crop_drops_a_defect_at_the_end_of_the_long_side_from_image_and_mask(tmp_path):
    path = write_pair(tmp_path, "x", 60, 24, (0, 0, 3, 3))
    assert decode_image(path, 16, "L", "crop").max() < 64
    assert not decode_mask(tmp_path / "x_mask.png", 16, path, "crop").any()
    assert decode_mask(tmp_path / "x_mask.png", 16, path, "pad").any()


# --- the cache ------------------------------------------------------------------------------------


def test_the_cache_never_serves_another_modes_pixels(tmp_path, ds_write_image, ds_cache_dir, monkeypatch):
    files = [ds_write_image(tmp_path / f"{i}.png", value=i, size=(10, 30)) for i in range(3)]
    calls = []
    real = images.decode_image
    monkeypatch.setattr(images, "decode_image", lambda *a: calls.append(a) or real(*a))
    decoded = {}
    for resize in RESIZE_MODES:
        decoded[resize], errors = decode_files(
            files, size=8, mode="RGB", cache_dir=ds_cache_dir, resize=resize
        )
        assert errors == {}
        assert np.array_equal(decoded[resize][0], real(files[0], 8, "RGB", resize))
    assert len(calls) == 9
    assert not np.array_equal(decoded["stretch"], decoded["pad"])
    assert not np.array_equal(decoded["pad"], decoded["crop"])
    for resize in RESIZE_MODES:  # now each is served from its own entry
        again, _ = decode_files(files, size=8, mode="RGB", cache_dir=ds_cache_dir, resize=resize)
        assert np.array_equal(again, decoded[resize])
    assert len(calls) == 9 and len(list(ds_cache_dir.glob("images-*.bin"))) == 3


def test_cached_masks_follow_the_mode_too(tmp_path, ds_cache_dir):
    path = write_pair(tmp_path, "x", 60, 24, (0, 0, 3, 3))  # a corner defect, which crop loses

    def masks(resize: str) -> np.ndarray:
        decoded, errors = decode_files(
            [tmp_path / "x_mask.png"],
            size=16,
            mode=images.MASK_MODE,
            cache_dir=ds_cache_dir,
            images_of=[path],
            resize=resize,
        )
        assert errors == {}
        return decoded

    assert masks("stretch").any() and not masks("crop").any() and masks("pad").any()
    assert len(list(ds_cache_dir.glob("images-*.bin"))) == 3
    assert not masks("crop").any() and masks("stretch").any()  # served, each from its own entry


# --- every image source ---------------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, str]:
    """One SRC string per image kind, each over wide images with a defect box and, where it can, its mask."""
    box = (2, 20, 6, 26)
    rows = ["sample_id,label,top,mask_top"]
    for i in range(2):
        write_pair(tmp_path / "img", f"s{i}", 48, 16, box)
        rows.append(f"s{i},{i},img/s{i}.png,img/s{i}_mask.png")
        write_pair(tmp_path / "tree" / f"c{i}" / f"s{i}", "top", 48, 16, box)
        write_pair(tmp_path / "cam", f"p{i}", 48, 16, box)
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    for pose in range(4):
        write_pair(tmp_path / "coil", f"obj1__{pose}", 48, 16, box)
    for split, label, name in (("train", "good", "a"), ("test", "good", "b"), ("test", "dent", "c")):
        write_pair(tmp_path / "mv" / split / label, name, 48, 16, box)
    mask = tmp_path / "mv" / "test" / "dent" / "c_mask.png"
    (tmp_path / "mv" / "ground_truth" / "dent").mkdir(parents=True)
    mask.rename(tmp_path / "mv" / "ground_truth" / "dent" / "c_mask.png")
    for path in [*(tmp_path / "mv").glob("t*/*/*_mask.png"), *(tmp_path / "coil").glob("*_mask.png")]:
        path.unlink()
    for light in range(1, 7):  # one Magnetic-tile tile: JPEG images, PNG masks of the same name
        image = write_pair(tmp_path / "mt" / "MT_Blowhole" / "Imgs", f"exp{light}_num_{light}", 48, 16, box)
        Image.open(image).save(image.with_suffix(".jpg"), quality=100)
        image.with_name(f"{image.stem}_mask.png").replace(image)
    return {
        "manifest": str(tmp_path / "m.csv"),
        "folder": str(tmp_path / "tree"),
        "pairs": f"pairs:{tmp_path / 'cam'}",
        "turntable": f"turntable:{tmp_path / 'coil'}",
        "mvtec": f"mvtec:{tmp_path / 'mv'}",
        "mtile": f"mtile:{tmp_path / 'mt'}",
    }


def test_every_image_source_takes_the_resize_option():
    planned = {name for name, kind in SOURCES.items() if kind.plan is not None}
    assert planned == set(KINDS)
    for name in planned:
        for function in (SOURCES[name].load, SOURCES[name].plan):
            assert inspect.signature(function).parameters["resize"].default == "stretch", name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("resize", RESIZE_MODES)
def test_each_source_reads_images_and_masks_with_the_mode(sources, kind, resize):
    options = {"size": 12, "resize": resize, **({"angle_step": 90} if kind == "turntable" else {})}
    plan = plan_source(sources[kind], **options)
    assert plan.options["resize"] == resize
    data = load_source(sources[kind], **options)
    view = data.view_names[0]
    mode = "L" if data.views[view].shape[1] == 1 else "RGB"
    assert np.array_equal(data.views[view][0], decode_image(data.paths[view][0], 12, mode, resize))
    for name, masks in data.masks.items():
        for i in np.flatnonzero(masks.any(axis=(1, 2))):
            assert_aligned(data.views[name][i, 0], masks[i])
    assert any(masks.any() for masks in data.masks.values()) == (kind != "turntable")


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_mode_is_named_with_a_suggestion(sources, kind):
    expected = r"resize must be one of 'stretch', 'pad', 'crop', got 'padd'; did you mean 'pad'\?"
    with pytest.raises(ValueError, match=expected):
        plan_source(sources[kind], resize="padd")


def test_check_image_options_names_the_resize_mode():
    assert check_image_options(8, "L", "raise", 1, "crop") == 1
    with pytest.raises(ValueError, match=r"got 'strech'; did you mean 'stretch'"):
        check_image_options(8, "L", "raise", 1, "strech")
    with pytest.raises(ValueError, match=r"resize must be one of .*got 7$"):
        check_image_options(8, "L", "raise", 1, 7)  # type: ignore[arg-type]


# --- the model file records the mode --------------------------------------------------------------


def test_the_cli_option_reads_as_a_string():
    assert parse_data_options(["resize=pad"]) == {"resize": "pad"}


def test_model_data_options_read_the_recorded_mode(sources, tmp_path):
    spec = SimpleNamespace(name="top", kind="image", shape=(1, 12, 12))
    clf = SimpleNamespace(view_specs_=[spec], metadata_={"resize": "pad"})
    manifest = parse_source(sources["manifest"])
    assert model_data_options(clf, manifest, {})["resize"] == "pad"
    assert model_data_options(clf, manifest, {"resize": "crop"})["resize"] == "crop"
    assert "resize" not in model_data_options(SimpleNamespace(view_specs_=[spec]), manifest, {})
    assert "resize" not in model_data_options(clf, parse_source("synthetic:n_per_class=4"), {})


@pytest.mark.usefixtures("one_torch_thread")
def test_train_records_the_mode_and_score_reads_new_data_with_it(tmp_path, capsys):
    for i in range(4):
        write_pair(tmp_path / "tree" / "ok" / f"s{i}", "top", 40 + i, 16, (2, 20, 6, 26))
    model, folder = tmp_path / "m.mmocc", str(tmp_path / "tree")
    tiny = [
        "--epochs",
        "1",
        "-p",
        "filters=[4,4]",
        "--threads",
        "1",
        "--size",
        "12",
        "-O",
        "cache=false",
        "-q",
    ]
    for given, recorded in (("-O resize=pad", "pad"), ("", "stretch")):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--data", folder, "--normal", "ok", "--out", str(model), *given.split(), *tiny])
        assert exit_info.value.code == 0, capsys.readouterr().err
        clf = mmocc.load(model)
        assert clf.metadata_["resize"] == recorded
        assert model_data_options(clf, parse_source(folder), {})["resize"] == recorded
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "score",
                str(model),
                "--data",
                folder,
                "--out",
                str(tmp_path / "s.csv"),
                "-O",
                "resize=crop",
                "-q",
            ]
        )
    assert exit_info.value.code == 0 and len((tmp_path / "s.csv").read_text().splitlines()) == 5
