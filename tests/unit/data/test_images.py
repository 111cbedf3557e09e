import os

import numpy as np
import pytest
from PIL import Image

from mmocc.data import cache, images
from mmocc.data.images import check_image_options, decode_files, decode_image

# every test here gets MMOCC_CACHE_DIR inside tmp_path, so none writes the user cache
pytestmark = pytest.mark.usefixtures("ds_cache_dir")


@pytest.fixture
def files(tmp_path, ds_write_image):
    return [ds_write_image(tmp_path / "img" / f"{i}.png", value=i) for i in range(5)]


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = images.decode_image

    def counting(path, size, mode):
        calls.append(path)
        return real(path, size, mode)

    monkeypatch.setattr(images, "decode_image", counting)
    return calls


def test_decode_image_shapes_and_modes(tmp_path, ds_write_image):
    path = ds_write_image(tmp_path / "a.png", size=(30, 20))
    rgb = decode_image(path, 8, "RGB")
    gray = decode_image(path, 8, "L")
    assert rgb.shape == (3, 8, 8) and rgb.dtype == np.uint8
    assert gray.shape == (1, 8, 8)
    expected = np.asarray(Image.open(path).convert("RGB").resize((8, 8), Image.Resampling.LANCZOS))
    assert np.array_equal(rgb, expected.transpose(2, 0, 1))


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    assert decode_image(path, 4, "L").max() == 40000 >> 8


def test_second_load_is_served_from_the_cache(files, ds_cache_dir, count_decodes):
    first, errors = decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir, n_jobs=2)
    assert errors == {} and len(count_decodes) == 5
    assert len(list(ds_cache_dir.glob("images-*.bin"))) == 1
    second, _ = decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir, n_jobs=2)
    assert len(count_decodes) == 5
    assert np.array_equal(first, second)


def test_cache_key_follows_files_and_settings(files, ds_cache_dir, count_decodes, ds_write_image):
    decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    decode_files(files, size=7, mode="RGB", cache_dir=ds_cache_dir)
    decode_files(files, size=6, mode="L", cache_dir=ds_cache_dir)
    decode_files(files[::-1], size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert len(count_decodes) == 20
    ds_write_image(files[0], value=99, size=(14, 10))
    stat = os.stat(files[0])
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    fresh, _ = decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert len(count_decodes) == 25
    assert np.array_equal(fresh[0], decode_image(files[0], 6, "RGB"))


def test_cache_false_writes_nothing(files, ds_cache_dir, count_decodes):
    decode_files(files, size=6, mode="RGB", cache=False, cache_dir=ds_cache_dir)
    decode_files(files, size=6, mode="RGB", cache=False, cache_dir=ds_cache_dir)
    assert len(count_decodes) == 10
    assert not ds_cache_dir.exists()


def test_cache_folder_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV_VAR, str(tmp_path / "env"))
    assert cache.resolve_cache_dir() == tmp_path / "env"
    assert cache.resolve_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv(cache.CACHE_ENV_VAR)
    assert "mmocc" in str(cache.resolve_cache_dir())


def test_environment_variable_sets_the_default_cache(files, ds_cache_dir, tmp_path):
    decode_files(files, size=6, mode="RGB")
    assert len(list((tmp_path / "env-cache").glob("images-*.bin"))) == 1


def test_failed_load_caches_nothing(files, ds_cache_dir, tmp_path):
    broken = tmp_path / "img" / "broken.png"
    broken.write_bytes(files[0].read_bytes()[:40])
    _, errors = decode_files([*files, broken], size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert list(errors) == [5]
    missing = tmp_path / "img" / "missing.png"
    _, errors = decode_files([*files, missing], size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert isinstance(errors[5], FileNotFoundError)
    assert not ds_cache_dir.exists()


def test_interrupted_write_leaves_no_file(files, ds_cache_dir, monkeypatch, count_decodes):
    def half_write(file, array):
        file.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_write_entry", half_write)
    with pytest.raises(KeyboardInterrupt):
        decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert list(ds_cache_dir.iterdir()) == []
    monkeypatch.undo()
    decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert len(list(ds_cache_dir.iterdir())) == 1


def test_disk_error_while_caching_warns_and_returns_the_images(files, ds_cache_dir, monkeypatch):
    def disk_full(file, array):
        file.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_write_entry", disk_full)
    with pytest.warns(RuntimeWarning, match="could not write image cache"):
        out, errors = decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert errors == {} and out.shape == (5, 3, 6, 6)
    assert list(ds_cache_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda entry: entry.write_bytes(b"garbage"), "unreadable: not an mmocc image cache entry"),
        (lambda entry: entry.write_bytes(entry.read_bytes()[:-3]), "unreadable: Failed to read all data"),
        (lambda entry: np.save(entry.open("wb"), np.zeros(3, np.uint8)), "unreadable: not an mmocc image"),
    ],
)
def test_corrupt_cache_entry_is_a_miss(files, ds_cache_dir, count_decodes, damage, reason):
    expected, _ = decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    (entry,) = ds_cache_dir.glob("images-*.bin")
    damage(entry)
    with pytest.warns(RuntimeWarning, match=f"ignoring image cache entry .*{entry.name}: {reason}"):
        again, _ = decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert len(count_decodes) == 10
    assert np.array_equal(expected, again)
    assert np.array_equal(cache.read_cached(entry, expected.shape), expected)


def test_cache_entry_of_another_shape_is_a_miss(files, ds_cache_dir):
    decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    (entry,) = ds_cache_dir.glob("images-*.bin")
    with pytest.warns(
        RuntimeWarning, match=r"holds uint8 \(5, 3, 6, 6\), expected C-ordered uint8 \(5, 1, 6, 6\)"
    ):
        assert cache.read_cached(entry, (5, 1, 6, 6)) is None


def test_pickled_cache_entry_is_refused(files, ds_cache_dir, count_decodes):
    decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    (entry,) = ds_cache_dir.glob("images-*.bin")
    with entry.open("wb") as handle:
        handle.write(cache.MAGIC + bytes(32))
        np.save(handle, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.warns(
        RuntimeWarning, match="unreadable: Object arrays cannot be loaded when allow_pickle=False"
    ):
        decode_files(files, size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert len(count_decodes) == 10


def test_decompression_bomb_guard_stays_on(files, ds_cache_dir, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    _, errors = decode_files(files[:1], size=6, mode="RGB", cache_dir=ds_cache_dir)
    assert isinstance(errors[0], Image.DecompressionBombError)


@pytest.mark.parametrize(
    ("size", "mode", "on_error", "n_jobs", "match"),
    [
        (0, "RGB", "raise", None, "size"),
        (True, "RGB", "raise", None, "size"),
        (8, "CMYK", "raise", None, "mode"),
        (8, "RGB", "ignore", None, "on_error"),
        (8, "RGB", "raise", 0, "n_jobs"),
    ],
)
def test_option_validation(size, mode, on_error, n_jobs, match):
    with pytest.raises(ValueError, match=match):
        check_image_options(size, mode, on_error, n_jobs)


def test_default_jobs_is_cpu_count():
    assert check_image_options(8, "L", "skip", None) == (os.cpu_count() or 1)
