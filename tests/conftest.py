"""Shared test setup: quiet TF, fixed seeds, the shared data directory, and the `slow` marker."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
    """The real shared data: $GRADREG_DATA_DIR (CI sets it) else ../shared/data next to the repo."""
    path = pathlib.Path(os.environ.get("GRADREG_DATA_DIR", SHARED_DATA))
    if not path.is_dir():
        pytest.fail(f"real data directory {path} not found; set GRADREG_DATA_DIR")
    return path
