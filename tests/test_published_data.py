"""The published numbers shipped as package data: shape, integrity, and the array helper."""

import numpy as np
import pytest

from gradreg_tf import published
from gradreg_tf.eval.grids import PAPER_EPSILONS
from gradreg_tf.recipes import PAPER_MODELS


def test_package_copy_is_used():
    path = published.reference_path("transfer_all.csv")
    assert path.parent.name == "reference" and path.parent.parent.name == "gradreg_tf"
    assert (path.parent / "README.md").is_file()


@pytest.mark.parametrize("dataset", ["mnist", "notmnist", "svhn"])
@pytest.mark.parametrize("attack", ["fgsm", "tgsm"])
def test_transfer_rows_complete_and_consistent(dataset, attack):
    rows = published.load_transfer(dataset=dataset, attack=attack)
    assert len(rows) == 25 * 8
    for r in rows:
        assert set(published.TRANSFER_FIELDS) <= set(r)
        assert r["n_examples"] == 256
        assert r["accuracy"] == pytest.approx(r["n_correct"] / 256)
        assert r["whitebox"] == (r["target_model"] == r["source_model"])
    grid = published.grid_array(rows, sources=PAPER_MODELS, targets=PAPER_MODELS,
                                epsilons=PAPER_EPSILONS)
    assert grid.shape == (5, 5, 8) and not np.isnan(grid).any()
    # eps = 0 is the clean accuracy on the same 256 images, whatever the source
    assert np.all(grid[:, :, 0] == grid[:1, :, 0])


def test_known_values():
    rows = published.load_transfer(dataset="mnist", attack="fgsm")
    grid = published.grid_array(rows, sources=["normal"], targets=["normal", "advtrain"],
                                epsilons=[0.1, 0.3, 0.35])
    assert grid[0, 0, 0] == 0.7265625 and grid[0, 1, 1] == pytest.approx(0.8555, abs=1e-4)
    assert np.isnan(grid[0, 0, 2])  # eps not in the file


def test_clean_accuracy():
    table = published.clean_accuracy_table("mnist")
    assert table == {"normal": 0.9930, "distilled": 0.9940, "advtrain": 0.9920,
                     "insensitive": 0.9944, "doubleback": 0.9942}
    svhn = published.load_clean_accuracy(dataset="svhn")
    assert {r["n_examples"] for r in svhn} == {4000}
    assert np.isnan([r for r in svhn if r["model"] == "normal"][0]["reg_lambda"])


def test_missing_file_message():
    with pytest.raises(FileNotFoundError, match="nope.csv.*not found"):
        published.reference_path("nope.csv")
