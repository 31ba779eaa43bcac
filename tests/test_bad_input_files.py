"""Bad files and options of the data loaders, the model cache and the zoo (synthetic files only).


A case table (``case(area, name, call, expect, mentions, check)``) judged by
``bad_input_support.classify``.
"""

import contextlib
import gzip
import os
import pathlib
import time

import numpy as np
import pytest
from bad_input_support import (
    REPO,
    TMP,
    CaseTable,
    WorkStarted,
    assert_refused_or_handled,
    isolated_cache,  # noqa: F401 - the fixture, used by pytestmark
    stub_training,
    tiny_dataset,
)

from gradreg_tf import cache, data, zoo
from gradreg_tf.data import mnist, notmnist, svhn

T = CaseTable()
case = T.add

# the real MNIST files for the official-files case: $GRADREG_DATA_DIR, ../shared/data, or the
# copies bundled with the package (same layout), as in conftest's ``data_dir``
_REAL = [pathlib.Path(os.environ["GRADREG_DATA_DIR"])] if os.environ.get("GRADREG_DATA_DIR") else []
_REAL += [REPO.parent / "shared" / "data", REPO / "gradreg_tf" / "data" / "bundled"]
SHARED = next(d for d in _REAL if (d / "mnist").is_dir())

pytestmark = pytest.mark.usefixtures("isolated_cache")


# ----------------------------------------------------------------------------- cases: data
def _mnist_files(directory, n_train=6, n_test=4, gz=True):
    rng = np.random.default_rng(0)
    arrays = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        mnist.TRAIN_LABELS: rng.integers(0, 10, n_train).astype(np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        mnist.TEST_LABELS: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        raw = mnist.MAGIC[name].to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in arr.shape
        )
        raw += arr.tobytes()
        path = directory / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw) if gz else raw)
    return directory


def add_data_cases(tmp: pathlib.Path, shared: pathlib.Path):
    a = "data"
    for name in ("cifar", None, 3, ""):
        case(a, f"load({name!r})", lambda n=name: data.load(n), mentions=(repr(name),))
    case(
        a,
        "load('MNIST') case-insensitive",
        lambda: data.load("MNIST", data_dir=_mnist_files(tmp / "m0", n_train=5010)),
        expect="ok",
        check=lambda d: d.name == "mnist",
    )
    for seed in (-1, 1.5, True, "0"):
        case(
            a,
            f"load(seed={seed!r})",
            lambda s=seed: data.load("notmnist", seed=s),
            mentions=(repr(seed),),
        )
    case(
        a,
        "data_dir missing",
        lambda: data.load("mnist", data_dir=tmp / "nowhere"),
        mentions=("nowhere",),
    )
    a_file = tmp / "a_file"
    a_file.write_text("x")
    case(a, "data_dir is a file", lambda: data.load("mnist", data_dir=a_file), mentions=("a_file",))

    def corrupt_mnist(how):
        d = _mnist_files(tmp / f"m_{how}")
        path = d / f"{mnist.TRAIN_IMAGES}.gz"
        raw = path.read_bytes()
        if how == "truncated gz":
            path.write_bytes(raw[: len(raw) // 2])
        elif how == "not gzip":
            path.write_bytes(b"hello world")
        elif how == "wrong magic":
            body = gzip.decompress(raw)
            path.write_bytes(gzip.compress((2049).to_bytes(4, "big") + body[4:]))
        elif how == "short content":
            path.write_bytes(gzip.compress(gzip.decompress(raw)[:-10]))
        elif how == "test copied to train":
            for tr, te in (
                (mnist.TRAIN_IMAGES, mnist.TEST_IMAGES),
                (mnist.TRAIN_LABELS, mnist.TEST_LABELS),
            ):
                (d / f"{tr}.gz").write_bytes((d / f"{te}.gz").read_bytes())
        elif how == "label file missing":
            (d / f"{mnist.TRAIN_LABELS}.gz").unlink()
        return mnist.load_mnist(data_dir=d, validation_size=1)

    for how in (
        "truncated gz",
        "not gzip",
        "wrong magic",
        "short content",
        "test copied to train",
        "label file missing",
    ):
        case(
            a,
            f"mnist {how}",
            lambda h=how: corrupt_mnist(h),
            mentions=(mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS),
        )
    case(
        a,
        "mnist validation_size -1",
        lambda: mnist.load_mnist(data_dir=_mnist_files(tmp / "m1"), validation_size=-1),
        mentions=("-1",),
    )
    case(
        a,
        "mnist validation_size = N",
        lambda: mnist.load_mnist(data_dir=_mnist_files(tmp / "m2"), validation_size=6),
        mentions=("6",),
    )

    def official_test_as_train():
        d = tmp / "m_official"
        d.mkdir(exist_ok=True)
        for name in mnist.FILES:
            (d / f"{name}.gz").write_bytes((shared / "mnist" / f"{name}.gz").read_bytes())
        (d / f"{mnist.TRAIN_IMAGES}.gz").write_bytes(
            (shared / "mnist" / f"{mnist.TEST_IMAGES}.gz").read_bytes()
        )
        (d / f"{mnist.TRAIN_LABELS}.gz").write_bytes(
            (shared / "mnist" / f"{mnist.TEST_LABELS}.gz").read_bytes()
        )
        return mnist.load_mnist(data_dir=d)

    case(
        a,
        "mnist official test files under train names",
        official_test_as_train,
        mentions=(mnist.TRAIN_IMAGES,),
    )

    bundled = data._locate.BUNDLED_DIR / "notmnist" / "notMNIST_small.npz"

    def bad_npz(how):
        d = tmp / f"n_{how.replace(' ', '_')}"
        d.mkdir(exist_ok=True)
        raw = bundled.read_bytes()
        path = d / "notMNIST_small.npz"
        if how == "truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif how == "zeroed middle":
            mid = len(raw) // 2
            path.write_bytes(raw[:mid] + bytes(64) + raw[mid + 64 :])
        elif how == "garbage":
            path.write_bytes(b"not a zip file at all")
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "wrong arrays":
            np.savez(path, a=np.zeros(3))
        elif how == "float images":
            np.savez(path, x=np.zeros((30, 28, 28)), y=np.arange(30) % 10)
        elif how == "labels 0..12":
            np.savez(path, x=np.zeros((30, 28, 28), np.uint8), y=np.arange(30) % 13)
        return notmnist.load_notmnist(data_dir=d, test_per_class=1)

    for how in (
        "truncated",
        "zeroed middle",
        "garbage",
        "empty",
        "wrong arrays",
        "float images",
        "labels 0..12",
    ):
        case(
            a,
            f"notMNIST_small.npz {how}",
            lambda h=how: bad_npz(h),
            mentions=("notMNIST_small.npz",),
        )
    for key in ("test_per_class", "valid_per_class", "train_per_class"):
        case(
            a, f"notmnist {key}=0", lambda k=key: notmnist.load_notmnist(**{k: 0}), mentions=(key,)
        )

    def svhn_files(how):
        import scipy.io

        d = tmp / f"s_{how.replace(' ', '_')}"
        d.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for name, n in ((svhn.TRAIN, 40), (svhn.TEST, 9)):
            labels = np.arange(n) % 10 + 1
            scipy.io.savemat(
                d / name,
                {
                    "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                    "y": labels[:, None].astype(np.uint8),
                },
            )
        if how == "test copied to train":
            (d / svhn.TRAIN).write_bytes((d / svhn.TEST).read_bytes())
        elif how == "garbage train":
            (d / svhn.TRAIN).write_bytes(b"garbage")
        elif how == "labels 0..9":
            scipy.io.savemat(
                d / svhn.TEST,
                {"X": np.zeros((32, 32, 3, 9), np.uint8), "y": (np.arange(9) % 10)[:, None]},
            )
        elif how == "RGB wrong shape":
            scipy.io.savemat(
                d / svhn.TEST,
                {"X": np.zeros((28, 28, 3, 9), np.uint8), "y": (np.arange(9) % 10 + 1)[:, None]},
            )
        return svhn.load_svhn(data_dir=d, valid_per_class_train=1, valid_per_class_extra=1)

    for how in ("test copied to train", "garbage train", "labels 0..9", "RGB wrong shape"):
        case(a, f"svhn {how}", lambda h=how: svhn_files(h), mentions=(svhn.TRAIN, svhn.TEST))
    case(a, "svhn train_limit 0", lambda: svhn.load_svhn(train_limit=0), mentions=("train_limit",))


# ----------------------------------------------------------------------------- cases: cache/zoo
def add_cache_cases(tmp: pathlib.Path):
    a = "cache"

    @contextlib.contextmanager
    def env(**values):
        old = {k: os.environ.get(k) for k in values}
        os.environ.update({k: v for k, v in values.items()})
        try:
            yield
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)

    def empty_variable():
        with env(GRADREG_CACHE="", XDG_CACHE_HOME=str(tmp / "xdg")):
            return cache.cache_dir()

    case(
        a,
        "GRADREG_CACHE=''",
        empty_variable,
        expect="ok",
        check=lambda p: p == tmp / "xdg" / "gradreg_tf",
    )
    a_file = tmp / "cache_file"
    a_file.write_text("x")
    case(a, "cache_dir is a file", lambda: cache.cache_dir(a_file), mentions=("cache_file",))

    def failing_writer():
        target = tmp / "w" / "m.keras"

        def write(tmp_path):
            pathlib.Path(tmp_path).write_bytes(b"half")
            raise OSError("disk full")

        try:
            cache.atomic_write(target, write)
        except OSError:
            pass
        return target

    case(
        a,
        "writer fails midway",
        failing_writer,
        expect="ok",
        check=lambda t: not t.exists() and not list(t.parent.glob(".m.*")),
    )

    def stale_temp():
        d = tmp / "stale"
        d.mkdir()
        leftover = d / ".m.abcd1234.keras"
        leftover.write_bytes(b"half")
        old = time.time() - cache.STALE_TEMP_SECONDS - 1
        os.utime(leftover, (old, old))
        cache.atomic_write(d / "m.keras", lambda p: pathlib.Path(p).write_bytes(b"ok"))
        return leftover

    case(a, "a killed save's temp file", stale_temp, expect="ok", check=lambda p: not p.exists())

    a = "zoo"
    ds = tiny_dataset()

    def corrupt_sidecar():
        import warnings

        root = tmp / "zoo_cache"
        path = zoo.cached_model_path(ds, "normal", n_batches=1, cache_dir=root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a model")
        path.with_suffix(".json").write_text("{corrupt")
        with stub_training(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                zoo.trained_model(ds, "normal", n_batches=1, cache_dir=root, progress=False)
            except WorkStarted:
                return {"retrained": True, "warnings": [str(w.message) for w in caught]}
        return {"retrained": False, "warnings": []}

    # the zoo promises to report a corrupt cached model and retrain it
    case(
        a,
        "corrupt .json sidecar: reported and retrained",
        corrupt_sidecar,
        expect="ok",
        check=lambda r: r["retrained"]
        and any(path_name in w for w in r["warnings"] for path_name in (".json", ".keras")),
    )
    for label, kwargs, mention in (
        ("seed -1", dict(seed=-1), "-1"),
        ("model 'bogus'", dict(model="bogus"), "bogus"),
        ("budget 'huge'", dict(budget="huge"), "huge"),
        ("n_batches 0", dict(n_batches=0), "0"),
    ):

        def run(k=kwargs):
            with stub_training():
                return zoo.trained_model(
                    ds, k.pop("model", "normal"), cache_dir=tmp / "zoo2", progress=False, **k
                )

        case(a, f"trained_model {label}", run, mentions=(mention,))


add_data_cases(TMP, SHARED)
add_cache_cases(TMP)


@pytest.mark.parametrize("c", T.params())
def test_files(c):
    """Refused clearly or handled correctly; fails on a silent, unclear or late outcome."""
    assert_refused_or_handled(c)
