"""Our reproduction held against the published numbers of Ross & Doshi-Velez (AAAI 2018).

Paper tier (default, CI): the five MNIST models trained at the paper's schedule (15,050 batches,
seed 0) that ship with the package (:mod:`gradreg_tf.pretrained`; no training). FGSM and TGSM
transfer grids exactly as the notebooks computed them (SETUP.md §5):

* on the first 256 test images, compared cell by cell with ``gradreg_tf/reference/transfer_all.csv``:
  mean |ours − published| <= 0.05 per attack (sampling alone contributes ~0.02: each cell is a
  256-image proportion, SE up to 0.031, measured independently on their models and ours);
* on the first :data:`N_CLAIMS` test images for the paper's claims (:mod:`gradreg_tf.claims`):
  more images than the published 256 make our side of each claim 2.8x more precise. Each claim
  is a statistical statement with its standard error (``Z = 2``) and must also be decisive:
  at least one standard error away from flipping (``claims.DECISIVE``), so no verdict rests on
  a handful of images;
* clean accuracy >= 99% for every model on the 10,000 test images (published 99.20-99.44%).

Reduced tier (``-m slow``): the five models at the ``reduced`` budget (1,505 batches), trained and
cached per machine (about 40 minutes on 2 CPU cores): the same checks with its own measured
bands; it exercises the whole training loop end to end. The default tier guards the training
code by bitwise replay instead (``tests/test_provenance.py``, ``tests/test_gradient_flow.py``).

Known misses are strict xfails with the measured numbers: if a miss disappears the test fails,
so a mark cannot outlive the problem it describes.
"""

import dataclasses

import numpy as np
import pytest

from gradreg_tf import data, pretrained, published, zoo
from gradreg_tf.eval import claims, grids
from gradreg_tf.recipes import PAPER_MODELS

N_GRID = 256
N_CLAIMS = 2048


@dataclasses.dataclass
class Reproduction:
    ds: object
    models: dict
    rows: list         # transfer rows on the first N_GRID test images (vs published)
    claim_rows: list   # transfer rows on the first N_CLAIMS test images (the claims)
    clean: dict        # clean accuracy on the whole test set


def grid_rows(models, ds, n):
    rows = []
    for attack in ("fgsm", "tgsm"):
        rows += [r.as_dict(per_example=True) for r in grids.transfer_grid(
            models, models, ds.x_test, ds.y_test, attack=attack, bounds=ds.bounds, n_examples=n)]
    return rows


def reproduce(ds, models) -> Reproduction:
    return Reproduction(ds=ds, models=models, rows=grid_rows(models, ds, N_GRID),
                        claim_rows=grid_rows(models, ds, N_CLAIMS),
                        clean={m: grids.accuracy(model, ds.x_test, ds.y_test)
                               for m, model in models.items()})


def assert_claim(claim):
    assert claim.holds, f"{claim.name}: {claim.detail}"
    assert claim.decisive, f"{claim.name} holds by only {claim.margin:.2f} SE: {claim.detail}"


# --------------------------------------------------------------------------- paper tier
@pytest.fixture(scope="module")
def mnist_paper():
    try:
        pretrained.verify_all()
    except pretrained.PretrainedModelError as err:
        pytest.fail(f"the paper tier needs the shipped models: {err}")
    ds = data.load("mnist")  # $GRADREG_DATA_DIR, else the copy bundled with the package
    return reproduce(ds, {m: zoo.pretrained("mnist", m) for m in PAPER_MODELS})


# Filled in from the measured paper-schedule numbers (strict: a fixed miss fails the test).
PAPER_MISSES: dict = {}


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_clean_accuracy_paper(mnist_paper, model):
    """Every MNIST model >= 99% clean test accuracy (published 99.20-99.44%)."""
    claim = claims.clean_accuracy_floor({model: mnist_paper.clean[model]}, floor=0.99,
                                        normal_floor=0.99)
    assert claim.holds, claim.detail


@pytest.mark.parametrize("attack", ["fgsm", "tgsm"])
def test_grid_close_to_published_paper(mnist_paper, attack):
    """Mean |ours − published| over the 200 cells of each MNIST grid <= 0.05."""
    mad = claims.mean_abs_difference(mnist_paper.rows, published.load_transfer(dataset="mnist"),
                                     attack)
    assert mad <= 0.05, f"MNIST {attack} mean absolute difference {mad:.4f} > 0.05"


@pytest.mark.parametrize("name", [pytest.param(n, marks=PAPER_MISSES.get(n, ()))
                                  for n in claims.CLAIMS])
def test_paper_claims_paper(mnist_paper, name):
    """The paper's MNIST claims on our paper-schedule models (first N_CLAIMS test images)."""
    assert_claim(claims.CLAIMS[name](mnist_paper.claim_rows))


def with_model_in_slot(rows, slot: str, model: str) -> list:
    """The grid ``rows`` would be with ``model`` trained in ``slot``'s place: every cell that
    attacks or evaluates ``slot`` is ``model``'s cell, relabeled. Exact, not an approximation:
    the grid's attacks are deterministic (FGSM with the true labels, TGSM toward
    ``(y + 1) mod K``), and on 128 images all 400 cells recomputed with the normal model in the
    double-backprop slot equal the relabeled ones image by image (2026-12-04; 32 images in
    :func:`test_the_relabeled_grid_is_the_recomputed_one`); recomputing the 2,048-image grid
    took the CI 490 s."""
    by_cell = {(r["attack"], r["target_model"], r["source_model"], r["eps"]): r for r in rows}

    def swap(name):
        return model if name == slot else name

    return [{**by_cell[(r["attack"], swap(r["target_model"]), swap(r["source_model"]), r["eps"])],
             "target_model": r["target_model"], "source_model": r["source_model"]}
            for r in rows]


def test_the_relabeled_grid_is_the_recomputed_one():
    """:func:`with_model_in_slot` gives, image by image, the grid recomputed with the normal
    model in the double-backprop slot (on the first 32 test images)."""
    n = 32
    ds = data.load("mnist")
    models = {m: zoo.pretrained("mnist", m) for m in PAPER_MODELS}
    rows = grid_rows(models, ds, n)
    direct = grid_rows({**models, "doubleback": models["normal"]}, ds, n)
    relabeled = with_model_in_slot(rows, "doubleback", "normal")
    assert len(relabeled) == len(direct) == len(rows) > 0
    for got, want in zip(relabeled, direct):
        assert {k: v for k, v in got.items() if k != "correct"} == \
            {k: v for k, v in want.items() if k != "correct"}
        np.testing.assert_array_equal(got["correct"], want["correct"])


def test_dead_penalty_fails_several_claims_paper(mnist_paper):
    """The normal model in the double-backprop slot (a penalty that never reached the weights
    trains exactly that model) must fail several claims decisively, not one by a hair."""
    broken = with_model_in_slot(mnist_paper.claim_rows, "doubleback", "normal")
    verdicts = claims.transfer_claims(broken)
    failed = sorted(n for n, c in verdicts.items() if not c.holds and c.decisive)
    assert {"doubleback_beats_normal_transfer_fgsm", "doubleback_beats_normal_transfer_tgsm",
            "doubleback_beats_normal_whitebox"} <= set(failed), failed
    assert len(failed) >= 4, failed


def _published_with(swap: dict):
    """The published MNIST grid with some models' rows and columns replaced by others'."""
    pub = published.load_transfer(dataset="mnist")
    acc = {(r["attack"], r["target_model"], r["source_model"], r["eps"]): r["accuracy"] for r in pub}
    out = []
    for r in pub:
        key = (r["attack"], swap.get(r["target_model"], r["target_model"]),
               swap.get(r["source_model"], r["source_model"]), r["eps"])
        out.append({**r, "accuracy": acc[key]})
    return out


# The published grid has accuracies only (256 images), so its claims use the per-cell bound on
# the standard error (claims module docstring). Measured: under it, the strict TGSM transfer
# claim is not supported at eps 0.5 (d = +0.047, se 0.025: 0.1 SE short); every other claim holds
# by 2.3 SE or more.
PUBLISHED_UNSUPPORTED = {"gradreg_examples_transfer_tgsm"}


def test_claims_fail_on_a_published_grid_with_a_dead_penalty():
    """The claim checks themselves: on the published grid every claim holds decisively (but the
    one the bound leaves unsupported); with the double-backprop model replaced by the normal one,
    the claims about the penalty fail."""
    verdicts = claims.transfer_claims(published.load_transfer(dataset="mnist"))
    for name, claim in verdicts.items():
        if name not in PUBLISHED_UNSUPPORTED:
            assert claim.holds and claim.decisive, (name, claim.detail)
    assert {n for n, c in verdicts.items() if not c.holds} == PUBLISHED_UNSUPPORTED
    broken = claims.transfer_claims(_published_with({"doubleback": "normal"}))
    assert sorted(n for n, c in broken.items() if not c.holds) == [
        "doubleback_beats_normal_transfer_fgsm", "doubleback_beats_normal_transfer_tgsm",
        "doubleback_beats_normal_whitebox", "doubleback_leads_transfer_fgsm",
        "doubleback_leads_transfer_tgsm", "gradreg_examples_transfer_fgsm",
        "gradreg_examples_transfer_tgsm"]
    no_masking = claims.transfer_claims(_published_with({"distilled": "normal"}))
    assert not no_masking["distilled_masks_own_fgsm"].holds
    no_advtrain = claims.transfer_claims(_published_with({"advtrain": "normal"}))
    assert not no_advtrain["advtrain_leads_whitebox"].holds


def test_claim_standard_errors_shrink_with_more_images():
    """The same accuracies measured on 4x the images give twice the margin (in SE units)."""
    pub = published.load_transfer(dataset="mnist")
    more = [{**r, "n_examples": 1024} for r in pub]
    a = claims.doubleback_beats_normal_transfer(pub, "fgsm")
    b = claims.doubleback_beats_normal_transfer(more, "fgsm")
    assert b.margin + claims.Z == pytest.approx(2 * (a.margin + claims.Z), rel=0.02)


# --------------------------------------------------------------------------- reduced tier
@pytest.fixture(scope="module")
def mnist_reduced():
    ds = data.load("mnist")
    return reproduce(ds, {m: zoo.trained_model(ds, m, budget="reduced") for m in PAPER_MODELS})


# Measured at the reduced budget (five models trained 2026-12-02, "insensitive" = double backprop
# at lambda=1000) on the first 2048 test images, as the claims are scored. All three hold at the
# paper's schedule with the same code (the paper tier above), so the best-supported cause is the
# tenfold shorter training.
REDUCED_MISSES = {
    "distilled_masks_own_fgsm": pytest.mark.xfail(strict=True, reason=(
        "reduced budget: the distilled student's logit margins (median 115) leave 80% of the first "
        "1000 test images with exactly-zero FGSM gradients, not ~all (98% at the paper's "
        "schedule); its white-box FGSM accuracy is 0.83/0.79/0.79 at eps 0.1/0.3/0.5 (clean "
        "0.98; published 0.992), 12.8 SE short of clean - 0.05.")),
    "doubleback_leads_transfer_fgsm": pytest.mark.xfail(strict=True, reason=(
        "reduced budget: on transferred FGSM the adversarially trained model leads at eps 0.4 "
        "(0.348 vs double backprop 0.289, 5.9 SE) and 0.5 (0.145 vs 0.128), and the normal model "
        "at 0.6-0.7 (0.092 vs 0.049 at 0.7, 7.4 SE); at the paper's schedule double backprop "
        "leads at every eps >= 0.4 by 5.3 SE or more.")),
    "doubleback_leads_transfer_tgsm": pytest.mark.xfail(strict=True, reason=(
        "reduced budget: on transferred TGSM the adversarially trained model leads at eps "
        "0.4-0.6 (0.395 vs double backprop 0.316 at 0.4, 8.1 SE) and the normal model at 0.7 "
        "(0.093 vs 0.064); at the paper's schedule double backprop leads by 5.5 SE or more.")),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", PAPER_MODELS)
def test_clean_accuracy_reduced(mnist_reduced, model):
    """Every MNIST model >= 98% clean test accuracy, normal >= 99% (published 99.20-99.44%)."""
    claim = claims.clean_accuracy_floor({model: mnist_reduced.clean[model]}, floor=0.98,
                                        normal_floor=0.99)
    assert claim.holds, claim.detail


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["fgsm", "tgsm"])
def test_grid_close_to_published_reduced(mnist_reduced, attack):
    """Mean |ours − published| over the 200 cells of each MNIST grid <= 0.08."""
    mad = claims.mean_abs_difference(mnist_reduced.rows, published.load_transfer(dataset="mnist"),
                                     attack)
    assert mad <= 0.08, f"MNIST {attack} mean absolute difference {mad:.4f} > 0.08"


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=REDUCED_MISSES.get(n, ()))
                                  for n in claims.CLAIMS])
def test_paper_claims_reduced(mnist_reduced, name):
    """The paper's MNIST claims on our reduced-budget reproduction."""
    assert_claim(claims.CLAIMS[name](mnist_reduced.claim_rows))
