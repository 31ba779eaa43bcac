"""Tests of gradreg_tf.data: every official file format (synthetic, tiny), the real shared data,
the bundled fallback and the error messages."""

import dataclasses
import gzip
import io
import pathlib
import tarfile

import numpy as np
import pytest
import scipy.io
from PIL import Image

from gradreg_tf import data
from gradreg_tf.data import _locate, _tfds, mnist, notmnist, svhn
from gradreg_tf.data.base import DataError, DataNotFoundError, Dataset

LETTERS = "ABCDEFGHIJ"


# --------------------------------------------------------------------------- helpers


def write_idx(path: pathlib.Path, array: np.ndarray, magic: int) -> pathlib.Path:
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def make_mnist(directory: pathlib.Path, *, n_train=7, n_test=4, gz=True, seed=0):
    """Tiny IDX files; returns the uint8 arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        mnist.TRAIN_LABELS: rng.integers(0, 10, n_train).astype(np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        mnist.TEST_LABELS: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays[mnist.TRAIN_IMAGES][0, 0, :2] = (0, 255)  # both ends of the range
    for name, array in arrays.items():
        write_idx(directory / (name + (".gz" if gz else "")), array, mnist.MAGIC[name])
    return arrays


def png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((28, 28), value, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def letter_value(label: int, i: int) -> int:
    """Pixel value of synthetic image i of a letter: encodes its label (value // 20)."""
    return 20 * label + i


def make_notmnist_files(root: pathlib.Path, *, per_class: int, layout: str) -> pathlib.Path:
    """notMNIST_small in the official folder layout (``folder`` or ``tar``), with one 0-byte PNG."""
    files = {}
    for label, letter in enumerate(LETTERS):
        for i in range(per_class):
            files[f"notMNIST_small/{letter}/img{i:02d}.png"] = png_bytes(letter_value(label, i))
    files["notMNIST_small/A/broken.png"] = b""  # like the official 0-byte files
    root.mkdir(parents=True, exist_ok=True)
    if layout == "folder":
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        return root / "notMNIST_small"
    path = root / "notMNIST_small.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def make_notmnist_npz(path: pathlib.Path, *, per_class: int) -> None:
    x = np.stack([np.full((28, 28), letter_value(c, i), np.uint8)
                  for c in range(10) for i in range(per_class)])
    y = np.repeat(np.arange(10, dtype=np.int64), per_class)
    names = np.array([f"{LETTERS[c]}/img{i:02d}.png" for c in range(10) for i in range(per_class)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y, names=names)


def decode_letters(x: np.ndarray) -> np.ndarray:
    """Inverse of the notMNIST scaling for constant synthetic images -> label."""
    values = np.rint(x[:, 0, 0, 0].astype(np.float64) * 255 + 127.5).astype(int)
    return values // 20


def make_svhn(directory: pathlib.Path, *, n_train_per_class=5, n_test=9, n_extra_per_class=4,
              extra=True, seed=0):
    """Official-layout .mat files: X uint8 (32, 32, 3, N), y (N, 1) with 10 meaning 0."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)

    def write(name, labels):
        x = rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
        y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
        if name == svhn.TEST:
            x[..., 0] = 77  # a constant image: std 0 -> divisor 1
        scipy.io.savemat(directory / name, {"X": x, "y": y})
        return np.moveaxis(x, -1, 0).copy(), labels

    out = {}
    out["train"] = write(svhn.TRAIN, rng.permutation(np.repeat(np.arange(10), n_train_per_class)))
    out["test"] = write(svhn.TEST, rng.integers(0, 10, n_test))
    if extra:
        out["extra"] = write(
            svhn.EXTRA, rng.permutation(np.repeat(np.arange(10), n_extra_per_class))
        )
    return out


def reference_gray_gcn(x_nhwc: np.ndarray) -> np.ndarray:
    """The original's im2gray + GCN, written out per image (datasets/svhn.py:131-159)."""
    out = []
    for image in x_nhwc.astype(float):
        gray = image[..., 0] * 0.2989 + image[..., 1] * 0.5870 + image[..., 2] * 0.1140
        std = gray.std(ddof=1)
        out.append((gray - gray.mean()) / (1.0 if std < 1e-4 else std))
    return np.asarray(out, np.float32)[..., None]


def matches(candidates: np.ndarray, image: np.ndarray) -> int:
    """Index of the one candidate equal to ``image`` (up to float32 rounding)."""
    (hits,) = np.nonzero(np.all(np.abs(candidates - image) <= 1e-5, axis=(1, 2, 3)))
    assert len(hits) == 1, hits
    return int(hits[0])


# --------------------------------------------------------------------------- MNIST, synthetic


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "uncompressed"])
def test_mnist_synthetic_idx_files(tmp_path, gz):
    arrays = make_mnist(tmp_path / "mnist", gz=gz)
    d = mnist.load_mnist(data_dir=tmp_path, validation_size=2)
    train_x = arrays[mnist.TRAIN_IMAGES].astype(np.float32) / np.float32(255)
    test_x = arrays[mnist.TEST_IMAGES].astype(np.float32) / np.float32(255)
    assert d.x_train.shape == (5, 28, 28, 1) and d.x_valid.shape == (2, 28, 28, 1)
    assert d.x_test.shape == (4, 28, 28, 1)
    np.testing.assert_allclose(d.x_valid[..., 0], train_x[:2], rtol=1e-6)  # first images = valid
    np.testing.assert_allclose(d.x_train[..., 0], train_x[2:], rtol=1e-6)
    np.testing.assert_allclose(d.x_test[..., 0], test_x, rtol=1e-6)  # official order kept
    np.testing.assert_array_equal(d.y_train, arrays[mnist.TRAIN_LABELS][2:])
    np.testing.assert_array_equal(d.y_test, arrays[mnist.TEST_LABELS])
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert (d.x_valid.min(), d.x_valid.max()) == (0.0, 1.0)
    assert d.bounds == (0.0, 1.0) and d.class_names == tuple("0123456789")
    assert "sha256 not checked" in d.source and d.deviation == ""


def test_mnist_truncated_gz_names_the_file(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / (mnist.TRAIN_IMAGES + ".gz")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=mnist.TRAIN_IMAGES):
        mnist.load_mnist(data_dir=tmp_path, validation_size=2)


def test_mnist_truncated_content_names_the_file(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / mnist.TEST_IMAGES
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=f"{mnist.TEST_IMAGES}.*truncated"):
        mnist.load_mnist(data_dir=tmp_path, validation_size=2)


def test_mnist_wrong_magic(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / (mnist.TEST_IMAGES + ".gz"), np.zeros(4, np.uint8), 2049)  # labels
    with pytest.raises(DataError, match=f"{mnist.TEST_IMAGES}.gz is not .*magic number 2049, "
                                        "expected 2051"):
        mnist.load_mnist(data_dir=tmp_path, validation_size=2)


def test_mnist_official_count_with_wrong_content_fails_checksum(tmp_path):
    make_mnist(tmp_path)
    labels = np.random.default_rng(1).integers(0, 10, 10000).astype(np.uint8)
    write_idx(tmp_path / (mnist.TEST_LABELS + ".gz"), labels, 2049)
    with pytest.raises(DataError, match=f"{mnist.TEST_LABELS}.gz has the official size.*sha256"):
        mnist.load_mnist(data_dir=tmp_path, validation_size=2)


def test_mnist_missing_files_lists_names_and_places(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / (mnist.TEST_LABELS + ".gz")).unlink()
    with pytest.raises(FileNotFoundError) as info:
        data.load("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, DataNotFoundError)
    for name in mnist.FILES:
        assert name in message
    assert f"{tmp_path} (data_dir argument): only" in message
    assert f"{tmp_path / 'mnist'} (data_dir argument)" in message
    assert "tensorflow-datasets" not in message  # an explicit data_dir is the only place


def test_mnist_tfds_fallback_and_its_failure(tmp_path, monkeypatch):
    monkeypatch.setenv(_locate.ENV_DATA_DIR, str(tmp_path))
    monkeypatch.setattr(_locate, "BUNDLED_DIR", tmp_path / "no-bundle")
    arrays = make_mnist(tmp_path / "idx")

    def fake_tfds(name, splits):
        assert name == "mnist" and tuple(splits) == ("train", "test")
        pairs = {"train": (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS),
                 "test": (mnist.TEST_IMAGES, mnist.TEST_LABELS)}
        return {split: {"image": arrays[x][..., None], "label": arrays[y].astype(np.int64)}
                for split, (x, y) in pairs.items()}, "tensorflow-datasets 'mnist' (fake)"

    monkeypatch.setattr(_tfds, "load_splits", fake_tfds)
    d = mnist.load_mnist(validation_size=2)
    assert d.source.endswith("(fake)") and d.deviation == mnist.TFDS_DEVIATION
    assert d.x_train.shape == (5, 28, 28, 1) and d.x_test.shape == (4, 28, 28, 1)
    data.clear_cache()

    def no_tfds(name, splits):
        raise _tfds.TfdsUnavailable("ModuleNotFoundError: offline (test)")

    monkeypatch.setattr(_tfds, "load_splits", no_tfds)
    with pytest.raises(DataNotFoundError, match=r"(?s)\$GRADREG_DATA_DIR.*no-bundle.*"
                                                r"tensorflow-datasets 'mnist' in .*offline"):
        mnist.load_mnist(validation_size=2)


def test_tfds_builders_can_prepare_with_the_installed_packages(tmp_path):
    """The real last resort, short of the download: tensorflow-datasets 4.9 needs
    ``importlib_resources`` to locate a builder's code before preparing it, and does not require
    it itself; without it the SVHN fallback failed with "No module named 'importlib_resources'"
    instead of trying to download (requirements.txt and setup.cfg ask for it)."""
    import tensorflow_datasets as tfds

    for name in ("mnist", "svhn_cropped"):
        builder = tfds.builder(name, data_dir=str(tmp_path))
        assert pathlib.Path(str(builder.code_path)).name.endswith(".py")


# --------------------------------------------------------------------------- notMNIST, synthetic


@pytest.mark.parametrize("layout", ["tar", "folder"])
def test_notmnist_official_layout_skips_corrupt_png(tmp_path, layout):
    make_notmnist_files(tmp_path / "notmnist", per_class=5, layout=layout)
    with pytest.warns(UserWarning) as record:
        d = notmnist.load_notmnist(data_dir=tmp_path, test_per_class=2)
    messages = [str(w.message) for w in record]
    assert any("skipped 1 unreadable image file(s): A/broken.png" in m for m in messages)
    assert any("notMNIST_large not found" in m for m in messages)
    assert d.x_test.shape == (20, 28, 28, 1) and d.x_train.shape == (30, 28, 28, 1)
    assert d.x_valid.shape == (0, 28, 28, 1) and d.y_valid.shape == (0,)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), 2)
    np.testing.assert_array_equal(decode_letters(d.x_test), d.y_test)  # labels follow images
    np.testing.assert_array_equal(decode_letters(d.x_train), d.y_train)
    values = d.x_test[:, 0, 0, 0].astype(np.float64)
    np.testing.assert_allclose(values, (np.rint(values * 255 + 127.5) - 127.5) / 255, atol=1e-7)
    assert d.bounds == (-0.5, 0.5) and d.class_names == tuple(LETTERS)
    assert "notMNIST_large not found" in d.deviation


def test_notmnist_tar_matches_npz_and_npz_is_preferred(tmp_path):
    make_notmnist_files(tmp_path / "a", per_class=4, layout="tar")
    make_notmnist_npz(tmp_path / "b" / "notMNIST_small.npz", per_class=4)
    with pytest.warns(UserWarning):
        from_tar = notmnist.load_notmnist(data_dir=tmp_path / "a", test_per_class=2, seed=3)
        from_npz = notmnist.load_notmnist(data_dir=tmp_path / "b", test_per_class=2, seed=3)
    np.testing.assert_array_equal(from_tar.x_test, from_npz.x_test)
    np.testing.assert_array_equal(from_tar.y_train, from_npz.y_train)
    (tmp_path / "b" / "notMNIST_small.tar.gz").write_bytes(b"not a tar")  # ignored: npz first
    with pytest.warns(UserWarning):
        assert "notMNIST_small.npz" in notmnist.load_notmnist(
            data_dir=tmp_path / "b", test_per_class=2).source


def test_notmnist_with_large_npz_has_no_deviation(tmp_path, recwarn):
    make_notmnist_npz(tmp_path / "notMNIST_small.npz", per_class=4)
    make_notmnist_npz(tmp_path / "notMNIST_large.npz", per_class=6)
    d = notmnist.load_notmnist(data_dir=tmp_path, test_per_class=3, valid_per_class=1,
                               train_per_class=4)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert d.deviation == "" and "notMNIST_large.npz" in d.source
    assert (len(d.x_train), len(d.x_valid), len(d.x_test)) == (40, 10, 30)
    for x, y in ((d.x_train, d.y_train), (d.x_valid, d.y_valid), (d.x_test, d.y_test)):
        np.testing.assert_array_equal(decode_letters(x), y)
        np.testing.assert_array_equal(np.bincount(y, minlength=10), len(y) // 10)
    make_notmnist_npz(tmp_path / "small_only" / "notMNIST_small.npz", per_class=4)
    with pytest.warns(UserWarning, match="notMNIST_large not found"):
        small_only = notmnist.load_notmnist(data_dir=tmp_path / "small_only", test_per_class=3)
    np.testing.assert_array_equal(small_only.x_test, d.x_test)  # same test draw either way


def test_notmnist_split_is_seeded(tmp_path):
    make_notmnist_npz(tmp_path / "notMNIST_small.npz", per_class=6)
    with pytest.warns(UserWarning):
        a = notmnist.load_notmnist(data_dir=tmp_path, test_per_class=3, seed=1)
        data.clear_cache()
        b = notmnist.load_notmnist(data_dir=tmp_path, test_per_class=3, seed=1)
        c = notmnist.load_notmnist(data_dir=tmp_path, test_per_class=3, seed=2)
    assert a is not b
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_test, c.x_test)


def test_notmnist_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="notMNIST_small.npz or notMNIST_small or"):
        data.load("notmnist", data_dir=tmp_path)
    path = make_notmnist_files(tmp_path, per_class=3, layout="tar")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="notMNIST_small.tar.gz"):
        notmnist.load_notmnist(data_dir=tmp_path, test_per_class=1)
    path.unlink()
    make_notmnist_npz(tmp_path / "notMNIST_small.npz", per_class=3)
    with pytest.raises(DataError, match="3 images of letter A, need more than 3"):
        notmnist.load_notmnist(data_dir=tmp_path, test_per_class=3)


# --------------------------------------------------------------------------- SVHN, synthetic

SVHN_KW = dict(valid_per_class_train=2, valid_per_class_extra=1)


def test_svhn_mat_files_preprocessing_and_split(tmp_path):
    files = make_svhn(tmp_path / "svhn")
    d = svhn.load_svhn(data_dir=tmp_path, seed=5, train_limit=25, **SVHN_KW)
    # Test set: official order, label 10 -> 0, gray + GCN exactly as the original.
    test_x, test_y = files["test"]
    np.testing.assert_array_equal(d.y_test, test_y)
    np.testing.assert_allclose(d.x_test, reference_gray_gcn(test_x), rtol=1e-6, atol=1e-6)
    assert d.bounds == (float(d.x_test.min()), float(d.x_test.max()))
    assert np.all(d.x_test[0] == 0.0)  # the constant image: std < 1e-4 -> divided by 1
    # Validation: first 1/class of extra, then first 2/class of train (each shuffled).
    assert len(d.x_valid) == 10 + 20 and len(d.x_train) == 25
    extra_x, extra_y = files["extra"]
    train_x, train_y = files["train"]
    candidates = reference_gray_gcn(np.concatenate([extra_x, train_x]))
    labels = np.concatenate([extra_y, train_y])
    is_extra = np.arange(len(labels)) < len(extra_y)
    first = np.zeros(len(labels), bool)  # first 1/class of extra, first 2/class of train
    for c in range(10):
        first[np.flatnonzero((labels == c) & is_extra)[:1]] = True
        first[np.flatnonzero((labels == c) & ~is_extra)[:2]] = True
    valid_src = np.array([matches(candidates, image) for image in d.x_valid])
    train_src = np.array([matches(candidates, image) for image in d.x_train])
    np.testing.assert_array_equal(labels[valid_src], d.y_valid)  # images keep their labels
    np.testing.assert_array_equal(labels[train_src], d.y_train)
    assert np.all(first[valid_src]) and not np.any(first[train_src])
    assert np.all(is_extra[valid_src[:10]]) and not np.any(is_extra[valid_src[10:]])
    # Training: the shuffled rest of extra (30 images) comes first, then train; limit 25.
    assert np.all(is_extra[train_src]) and len(set(train_src)) == 25
    assert d.deviation == "" and d.class_names == tuple("0123456789")


def test_svhn_seeded_split_is_reproducible(tmp_path):
    make_svhn(tmp_path)
    a = svhn.load_svhn(data_dir=tmp_path, seed=1, **SVHN_KW)
    data.clear_cache()
    b = svhn.load_svhn(data_dir=tmp_path, seed=1, **SVHN_KW)
    c = svhn.load_svhn(data_dir=tmp_path, seed=2, **SVHN_KW)
    assert a is not b and len(a.x_train) == 30 + 30  # no limit reached
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_valid, b.y_valid)
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_array_equal(a.x_test, c.x_test)  # test order never shuffled


def test_svhn_without_extra_says_so(tmp_path):
    files = make_svhn(tmp_path, extra=False)
    d = svhn.load_svhn(data_dir=tmp_path, **SVHN_KW)
    assert (len(d.x_train), len(d.x_valid), len(d.x_test)) == (30, 20, 9)
    assert "extra_32x32.mat not found" in d.deviation
    np.testing.assert_array_equal(np.bincount(d.y_valid, minlength=10), 2)
    np.testing.assert_array_equal(d.y_test, files["test"][1])


def test_svhn_missing_and_malformed_files(tmp_path, monkeypatch):
    monkeypatch.setenv(_locate.ENV_DATA_DIR, str(tmp_path))

    def no_tfds(name, splits):
        raise _tfds.TfdsUnavailable("offline (test)")

    monkeypatch.setattr(_tfds, "load_splits", no_tfds)
    with pytest.raises(DataNotFoundError) as info:
        data.load("SVHN")
    message = str(info.value)
    for expected in (svhn.TRAIN, svhn.TEST, svhn.EXTRA, f"{tmp_path} ($GRADREG_DATA_DIR)",
                     f"{tmp_path / 'svhn'} ($GRADREG_DATA_DIR)",
                     "tensorflow-datasets 'svhn_cropped'", "offline (test)"):
        assert expected in message
    make_svhn(tmp_path)
    scipy.io.savemat(tmp_path / svhn.TEST, {"X": np.zeros((28, 28, 3, 2), np.uint8),
                                            "y": np.ones((2, 1))})
    with pytest.raises(DataError, match=r"test_32x32.mat: X must be uint8 \(32, 32, 3, N\)"):
        svhn.load_svhn(**SVHN_KW)


def test_svhn_tfds_fallback_restores_official_order(tmp_path, monkeypatch):
    monkeypatch.setenv(_locate.ENV_DATA_DIR, str(tmp_path))
    files = make_svhn(tmp_path / "mats")

    def fake_tfds(name, splits):
        assert name == "svhn_cropped"
        out = {}
        for split in splits:
            x, y = files[split]
            order = np.random.default_rng(0).permutation(len(y))  # tfds stores shuffled
            ids = np.array([f"{split}_{i:06d}".encode() for i in range(len(y))])
            out[split] = {"image": x[order], "label": y[order], "id": ids[order]}
        return out, "tensorflow-datasets 'svhn_cropped' (fake)"

    monkeypatch.setattr(_tfds, "load_splits", fake_tfds)
    d = svhn.load_svhn(seed=4, **SVHN_KW)
    ref = svhn.load_svhn(data_dir=tmp_path / "mats", seed=4, **SVHN_KW)
    assert "fake" in d.source
    np.testing.assert_array_equal(d.x_test, ref.x_test)
    np.testing.assert_array_equal(d.x_train, ref.x_train)


# --------------------------------------------------------------------------- record, registry


def test_dataset_is_immutable_and_validated():
    x = np.zeros((2, 4, 4, 1), np.float32)
    d = Dataset("mnist", x, [0, 1], x, [1, 0], x[:0], [], (0.0, 1.0), "0123456789", "here")
    assert repr(d) == "MNIST Dataset, N=2/0/2 train/valid/test, bounds (0.0, 1.0)"
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        d.x_train[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.bounds = (0.0, 2.0)
    with pytest.raises(ValueError, match="y_test has 3 labels but the batch has 2"):
        Dataset("mnist", x, [0, 1], x, [1, 0, 1], x[:0], [], (0.0, 1.0), "0123456789", "")
    with pytest.raises(ValueError, match="x_train must be a float32 NHWC array"):
        Dataset("mnist", x[..., 0], [0, 1], x, [1, 0], x[:0], [], (0, 1), "0123456789", "")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar10'; expected one of "
                                         "mnist, notmnist, svhn"):
        data.load("cifar10")


def test_bad_seed():
    with pytest.raises(ValueError, match="seed must be a non-negative integer, received -1"):
        data.load("notmnist", seed=-1)


# --------------------------------------------------------------------------- the real shared data


def test_real_mnist(data_dir, monkeypatch):
    monkeypatch.setenv(_locate.ENV_DATA_DIR, str(data_dir))
    d = data.load("mnist")
    assert d.x_train.shape == (55000, 28, 28, 1) and d.x_valid.shape == (5000, 28, 28, 1)
    assert d.x_test.shape == (10000, 28, 28, 1)
    assert d.bounds == (0.0, 1.0) and (d.x_test.min(), d.x_test.max()) == (0.0, 1.0)
    assert d.y_test[0] == 7 and d.y_test.dtype == np.int64
    np.testing.assert_array_equal(
        np.bincount(d.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert "sha256 verified" in d.source and str(data_dir) in d.source
    assert repr(d) == "MNIST Dataset, N=55000/5000/10000 train/valid/test, bounds (0.0, 1.0)"
    assert not d.x_train.flags.writeable
    assert data.load("mnist") is d  # in-process cache


def test_real_notmnist(data_dir):
    with pytest.warns(UserWarning, match="notMNIST_large not found"):
        d = data.load("notMNIST", data_dir=data_dir)
    assert d.x_test.shape == (10000, 28, 28, 1) and d.x_train.shape == (8724, 28, 28, 1)
    assert d.x_valid.shape == (0, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(d.y_test), 1000)
    assert d.bounds == (-0.5, 0.5) and (d.x_test.min(), d.x_test.max()) == (-0.5, 0.5)
    assert "notMNIST_large not found" in d.deviation
    assert "notMNIST_small.npz" in d.source and "sample" not in d.source


def test_bundled_fallback(monkeypatch):
    monkeypatch.delenv(_locate.ENV_DATA_DIR, raising=False)
    d = data.load("mnist")
    assert "bundled package data" in d.source and "sha256 verified" in d.source
    assert d.x_train.shape == (55000, 28, 28, 1) and d.y_test[0] == 7
    with pytest.warns(UserWarning, match="notMNIST_large not found"):
        n = data.load("notmnist")
    assert "bundled package data" in n.source and n.x_test.shape == (10000, 28, 28, 1)


def test_env_dir_without_the_files_falls_back_to_bundled(tmp_path, monkeypatch):
    monkeypatch.setenv(_locate.ENV_DATA_DIR, str(tmp_path))
    assert "bundled package data" in data.load("mnist").source


@pytest.mark.slow
def test_real_notmnist_tar_equals_npz(data_dir):
    x, y, skipped = notmnist.read_pngs(data_dir / "notmnist" / "notMNIST_small.tar.gz")
    ref_x, ref_y, _ = notmnist.read_npz(data_dir / "notmnist" / "notMNIST_small.npz")
    assert len(skipped) == 2
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)


# --------------------------------------------------------------------------- misnamed, corrupt


def test_mnist_test_files_under_train_names_are_refused(tmp_path):
    """The test files copied to the train-* names gave validation = test images, silently."""
    make_mnist(tmp_path, n_train=4, n_test=4)
    for train, test in ((mnist.TRAIN_IMAGES, mnist.TEST_IMAGES),
                        (mnist.TRAIN_LABELS, mnist.TEST_LABELS)):
        (tmp_path / f"{train}.gz").write_bytes((tmp_path / f"{test}.gz").read_bytes())
    message = rf"{mnist.TRAIN_IMAGES}.gz holds the same 4 images as .*{mnist.TEST_IMAGES}"
    with pytest.raises(DataError, match=message):
        mnist.load_mnist(data_dir=tmp_path, validation_size=1)


def test_mnist_official_test_file_under_a_train_name_is_refused(tmp_path, data_dir):
    src = data_dir / "mnist"
    for name in mnist.FILES:
        (tmp_path / f"{name}.gz").write_bytes((src / f"{name}.gz").read_bytes())
    test_images = (src / f"{mnist.TEST_IMAGES}.gz").read_bytes()
    (tmp_path / f"{mnist.TRAIN_IMAGES}.gz").write_bytes(test_images)
    message = rf"{mnist.TRAIN_IMAGES}.gz holds the official {mnist.TEST_IMAGES}"
    with pytest.raises(DataError, match=message):
        mnist.load_mnist(data_dir=tmp_path)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, "flip"])
def test_corrupt_notmnist_npz_is_a_data_error_naming_the_file(tmp_path, cut):
    """A truncated notMNIST_small.npz raised a raw BadZipFile that did not name the file."""
    good = _locate.BUNDLED_DIR / "notmnist" / "notMNIST_small.npz"
    raw = bytearray(good.read_bytes())
    if cut == "flip":
        middle = len(raw) // 2
        raw[middle:middle + 64] = bytes(64)
    else:
        raw = raw[:int(len(raw) * cut)]
    path = tmp_path / "notMNIST_small.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"cannot read {path}"):
        notmnist.read_npz(path)


def test_svhn_test_file_copied_to_train_is_refused(tmp_path):
    make_svhn(tmp_path, extra=False)
    (tmp_path / svhn.TRAIN).write_bytes((tmp_path / svhn.TEST).read_bytes())
    with pytest.raises(DataError, match=rf"{svhn.TRAIN} holds the same 9 images as .*{svhn.TEST}"):
        svhn.load_svhn(data_dir=tmp_path, **SVHN_KW)
