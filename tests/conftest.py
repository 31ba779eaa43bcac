"""Shared test setup: quiet TF, fixed seeds, the shared data directory, and the `slow` marker."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BUNDLED_DATA = REPO / "gradreg_tf" / "data" / "bundled"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked @pytest.mark.slow (minutes to hours)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """Real data: $GRADREG_DATA_DIR (CI sets it), else ../shared/data next to the repo, else the
    MNIST and notMNIST_small copies bundled with the package (same layout: mnist/, notmnist/)."""
    if os.environ.get("GRADREG_DATA_DIR"):
        path = pathlib.Path(os.environ["GRADREG_DATA_DIR"])
        if not path.is_dir():
            pytest.fail(f"GRADREG_DATA_DIR={path} is not a directory")
        return path
    return SHARED_DATA if SHARED_DATA.is_dir() else BUNDLED_DATA
