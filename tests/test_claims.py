"""The claim statistics themselves: paired per-image standard errors, ties, and no verdict from
missing or malformed numbers (``gradreg_tf.claims``)."""

import math

import numpy as np
import pytest

from gradreg_tf import published
from gradreg_tf.eval import claims, grids

MODELS = claims.PAPER_MODELS


def synthetic_rows(acc_of, *, n=400, seed=0, attacks=("fgsm", "tgsm")):
    """A full grid of per-image results: ``acc_of(target, source, eps)`` is each cell's rate, and
    the images are independent draws per cell (so cells are not correlated)."""
    rng = np.random.default_rng(seed)
    rows = []
    for attack in attacks:
        for t in MODELS:
            for s in MODELS:
                for e in grids.PAPER_EPSILONS:
                    correct = rng.random(n) < acc_of(t, s, e)
                    rows.append({"attack": attack, "target_model": t, "source_model": s,
                                 "eps": e, "accuracy": float(correct.mean()), "n_examples": n,
                                 "correct": correct})
    return rows


def test_paired_se_of_k_identical_cells_is_sqrt_k_times_the_summed_binomial_se():
    """One side = k identical copies of a cell, the other = k independent cells: summing the
    cells' binomial variances as if independent (the old estimate) understates the first side's
    variance k-fold; the paired per-image estimate does not."""
    rng = np.random.default_rng(1)
    n, k = 4000, 3
    copy = rng.random(n) < 0.5
    a = np.stack([copy] * k)
    b = np.stack([rng.random(n) < 0.5 for _ in range(k)])
    d, se = claims.paired_difference(a, b)

    def old(cells):  # the estimate this replaced: Σ p(1-p)/n / k² per side
        return sum(c.mean() * (1 - c.mean()) / n for c in cells) / len(cells) ** 2

    old_se_a = math.sqrt(old(a))
    # the A side alone: compare with a constant B (variance 0) to isolate it
    _, se_a = claims.paired_difference(a, np.ones((1, n)))
    assert se_a == pytest.approx(math.sqrt(k) * old_se_a, rel=0.02)
    # and the difference: var = var(A) + var(B) with var(A) k times what the old sum said
    assert se == pytest.approx(math.sqrt(old(a) * k + old(b)), rel=0.05)


def test_bound_without_per_image_results_is_at_least_the_paired_se():
    """The per-cell bound used for the published grid is never below the paired estimate of
    k perfectly correlated cells."""
    rng = np.random.default_rng(2)
    n = 2000
    copy = rng.random(n) < 0.3
    other = rng.random(n) < 0.6
    _, paired = claims.paired_difference(np.stack([copy] * 4), np.stack([other]))
    _, bound = claims.bounded_difference([(copy.mean(), n)] * 4, [(other.mean(), n)])
    assert bound >= paired * 0.98


def test_claims_use_the_paired_estimate_when_rows_carry_per_image_results():
    rows = synthetic_rows(lambda t, s, e: 0.9 if t == "doubleback" else 0.5, n=300)
    with_pairs = claims.doubleback_beats_normal_transfer(rows, "fgsm")
    without = claims.doubleback_beats_normal_transfer(
        [{k: v for k, v in r.items() if k != "correct"} for r in rows], "fgsm")
    assert with_pairs.holds and without.holds
    assert with_pairs.detail != without.detail


def test_strict_claims_never_hold_between_identical_sides():
    """'Beats' and 'transfers better' fail when both sides are the same model, whatever n."""
    rows = synthetic_rows(lambda t, s, e: 0.6, n=500)
    # make doubleback an exact copy of normal, as target and as source
    by_key = {(r["attack"], r["target_model"], r["source_model"], r["eps"]): r for r in rows}
    swapped = []
    for r in rows:
        t = "normal" if r["target_model"] == "doubleback" else r["target_model"]
        s = "normal" if r["source_model"] == "doubleback" else r["source_model"]
        src = by_key[(r["attack"], t, s, r["eps"])]
        swapped.append({**r, "accuracy": src["accuracy"], "correct": src["correct"]})
    verdicts = claims.transfer_claims(swapped)
    for name in ("gradreg_examples_transfer_fgsm", "gradreg_examples_transfer_tgsm",
                 "doubleback_beats_normal_transfer_fgsm", "doubleback_beats_normal_whitebox"):
        assert not verdicts[name].holds, (name, verdicts[name].detail)


def test_identical_sides_without_spread_are_a_tie_not_a_win():
    """Two identical sides (every image agrees: d = se = 0) certainly do not 'beat' one another
    and certainly 'lead' (are not behind): both verdicts are decisive (a penalty that never
    reached the weights trains exactly the normal model, and must fail decisively)."""
    claim = claims._verdict("x", [("same", 0.0, 0.0)], strict=True)
    assert not claim.holds and claim.decisive and claim.margin == -math.inf
    leads = claims._verdict("x", [("same", 0.0, 0.0)], strict=False)
    assert leads.holds and leads.decisive


@pytest.mark.parametrize("bad, match", [
    (float("nan"), "non-finite"),
    ("", "missing or non-finite"),
    (None, "must be a number"),
    (99.3, "percent"),
    (-0.1, r"fraction in \[0, 1\]"),
    (float("inf"), "non-finite"),
])
def test_transfer_claims_refuse_malformed_accuracies(bad, match):
    """A NaN (an empty CSV cell), infinite, negative or percent accuracy is an error naming the
    cell, never a verdict (a NaN grid used to hold every claim with margin +inf)."""
    rows = published.load_transfer(dataset="mnist")
    broken = [{**r, "accuracy": bad} if r["target_model"] == "doubleback" else r for r in rows]
    with pytest.raises(ValueError, match=match) as info:
        claims.transfer_claims(broken)
    assert "doubleback" in str(info.value)


def test_transfer_claims_refuse_duplicated_and_missing_cells():
    rows = published.load_transfer(dataset="mnist")
    with pytest.raises(ValueError, match="given twice"):
        claims.transfer_claims(rows + rows[:1])
    partial = [r for r in rows if r["target_model"] != "doubleback"]
    with pytest.raises(claims.MissingCellError, match="doubleback"):
        claims.transfer_claims(partial)


@pytest.mark.parametrize("field, value, match", [
    ("n_examples", 0, "positive integer"), ("n_examples", 2.5, "positive integer"),
    ("eps", float("nan"), "eps must be"), ("eps", -0.1, "eps must be"),
])
def test_transfer_claims_refuse_bad_sizes_and_eps(field, value, match):
    rows = published.load_transfer(dataset="mnist")
    with pytest.raises(ValueError, match=match):
        claims.transfer_claims([{**rows[0], field: value}] + rows[1:])


def test_per_image_results_must_match_the_row():
    rows = synthetic_rows(lambda t, s, e: 0.5, n=100, attacks=("fgsm",))
    rows[0] = {**rows[0], "accuracy": 0.99}
    with pytest.raises(ValueError, match="not the same measurement"):
        claims.doubleback_beats_normal_whitebox(rows)


def test_mean_abs_difference_refuses_nan():
    rows = published.load_transfer(dataset="mnist")
    with pytest.raises(ValueError, match="non-finite"):
        claims.mean_abs_difference([{**rows[0], "accuracy": float("nan")}] + rows[1:], rows,
                                   "fgsm")


@pytest.mark.parametrize("clean, match", [
    ({"normal": 99.3}, "percent"), ({"normal": float("nan")}, "non-finite"), ({}, "at least one"),
])
def test_clean_accuracy_floor_refuses_percent_and_nan(clean, match):
    """Percent accuracies used to end in a bare 'math domain error'."""
    with pytest.raises(ValueError, match=match):
        claims.clean_accuracy_floor(clean, floor=0.99, normal_floor=0.99)


def test_per_example_round_trip(tmp_path):
    rows = [grids.GridRow("fgsm", "a", "b", e, c.mean(), int(c.sum()), 37, c)
            for e, c in [(0.1, np.arange(37) % 3 == 0), (0.2, np.arange(37) % 2 == 0)]]
    path = grids.save_per_example(tmp_path / "g.per_example.npz", rows)
    table = grids.load_per_example(path)
    assert set(table) == {("fgsm", "a", "b", 0.1), ("fgsm", "a", "b", 0.2)}
    np.testing.assert_array_equal(table[("fgsm", "a", "b", 0.1)], rows[0].correct)
    rebuilt = grids.per_example_rows(table)
    assert [r["accuracy"] for r in rebuilt] == [r.accuracy for r in rows]
    with pytest.raises(ValueError, match="kept no per-image"):
        grids.save_per_example(tmp_path / "x.npz", [grids.GridRow("fgsm", "a", "b", 0.1,
                                                                  0.5, 1, 2)])
