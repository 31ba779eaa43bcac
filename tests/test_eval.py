"""The evaluation package's small measurements (``gradreg_tf.eval``): each is the one place its
number is computed, so each is held here against an independent computation."""

import importlib
import sys
import warnings

import numpy as np
import pytest

from gradreg_tf import published
from gradreg_tf.eval import claims, compare, metrics

MODELS = claims.PAPER_MODELS


def test_macro_f1_by_hand():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: tp 0 -> 0; class 3: 0
    assert metrics.macro_f1(y, pred, 4) == pytest.approx((0.5 + 0.8) / 4)
    with pytest.raises(ValueError, match="equal length"):
        metrics.macro_f1(y, pred[:3], 4)


def test_blackbox_means_agree_with_the_claims_definition():
    """The black-box mean of the transfer JSON and the one the claims use are one quantity."""
    rows = published.load_transfer(dataset="mnist", attack="fgsm")
    eps = (0.3, 0.4, 0.5)
    grid = published.grid_array(rows, sources=MODELS, targets=MODELS, epsilons=eps)
    means = metrics.blackbox_means(grid, list(MODELS))
    for target in MODELS:
        np.testing.assert_allclose(means[target],
                                   claims.blackbox_curve(rows, "fgsm", target, eps))


def test_grid_agreement_of_a_grid_with_itself_and_a_shift():
    rows = published.load_transfer(dataset="mnist", attack="fgsm")
    eps = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    grid = published.grid_array(rows, sources=MODELS, targets=MODELS, epsilons=eps)
    same = metrics.grid_agreement(grid, grid, MODELS, eps, 256, 0.0)
    assert same["max_abs_difference"] == 0 and same["fraction_within_2se"] == 1.0
    shifted = grid.copy()
    shifted[1, 2, 0] += 0.5
    out = metrics.grid_agreement(shifted, grid, MODELS, eps, 256, None)
    assert out["max_abs_difference"] == pytest.approx(0.5)
    assert out["max_at"] == {"source_model": MODELS[1], "target_model": MODELS[2],
                             "eps": float(eps[0])}
    assert out["fraction_within_2se"] == pytest.approx(1 - 1 / out["n_points"])


def test_region_counts_and_summary():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 1, 0, 1], bool)
    c = np.array([0, 0, 0, 1, 1], bool)
    counts = metrics.region_counts([a, b, c])
    assert counts == {"100": 1, "010": 1, "001": 1, "110": 1, "101": 0, "011": 0, "111": 1}
    s = metrics.distribution_summary([1.0, 2.0, 3.0, 4.0, 5.0], floor=1.0)
    assert (s["median"], s["q1"], s["fraction_at_floor"]) == (3.0, 2.0, 0.2)
    with pytest.raises(ValueError, match="non-finite"):
        metrics.distribution_summary([1.0, float("nan")])


def test_model_cells_groups_and_distance():
    rows = published.load_transfer(dataset="mnist", attack="tgsm")
    shifted = [{**r, "accuracy": min(1.0, r["accuracy"] + 0.01)}
               if r["target_model"] == "insensitive" and r["source_model"] != "insensitive"
               else r for r in rows]
    cells = compare.model_cells(shifted, rows, "tgsm")
    assert {g: len(v) for g, v in cells["pairs"].items()} == {"target": 28, "source": 28,
                                                             "white-box": 7}
    assert cells["mean_abs_diff"]["white-box"] == 0 and cells["mean_abs_diff"]["source"] == 0
    assert 0 < cells["mean_abs_diff"]["target"] <= 0.01 + 1e-12
    assert compare.cell_group("normal", "advtrain") is None


@pytest.mark.parametrize("old, new", [("gradreg_tf.claims", "gradreg_tf.eval.claims"),
                                      ("gradreg_tf.seeds", "gradreg_tf.eval.seeds"),
                                      ("gradreg_tf.evaluation", "gradreg_tf.eval.grids"),
                                      ("gradreg_tf.audit", "gradreg_tf.eval.audit")])
def test_moved_modules_keep_their_old_names(old, new):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)
               for w in caught)


def test_moved_modules_are_attributes_of_the_package():
    import gradreg_tf

    sys.modules.pop("gradreg_tf.evaluation", None)
    vars(gradreg_tf).pop("evaluation", None)
    with pytest.warns(DeprecationWarning, match="gradreg_tf.eval.grids"):
        assert gradreg_tf.evaluation is importlib.import_module("gradreg_tf.eval.grids")
    with pytest.raises(AttributeError, match="no_such_module"):
        gradreg_tf.no_such_module


def test_result_files_are_atomic_and_keep_the_run_log_apart(tmp_path):
    import json

    from gradreg_tf.eval import io

    path = io.write_json(tmp_path / "a" / "x.json",
                         {"v": np.float32(0.5), "nan": float("nan"), "run": {"seconds": 1}})
    assert json.loads(path.read_text()) == {"v": 0.5, "nan": None}
    assert json.loads(io.run_log_path(path).read_text()) == {"seconds": 1}
    assert io.write_csv(tmp_path / "x.csv", [{"a": 1, "b": 2}], ["b"]).read_bytes() == b"b\r\n2\r\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "x.csv", "x.json", "x.run.json"]
    assert io.markdown_table([{"k": 1}], [("k", "K")]) == "| K |\n|---|\n| 1 |\n"
