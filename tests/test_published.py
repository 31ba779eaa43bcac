"""Our reproduction held against the published numbers of Ross & Doshi-Velez (AAAI 2018).

Default tier (CI): the five MNIST models at the ``reduced`` budget (1500 nominal batches, trained
once per machine and cached), FGSM and TGSM transfer grids on the first 256 test images exactly as
the notebooks computed them (SETUP.md §5), checked against ``gradreg_tf/reference/transfer_all.csv``
and against the paper's claims (:mod:`gradreg_tf.claims`, which states the published numbers each
claim rests on).

Slow tier (``--runslow``; hours): the paper's full schedule on MNIST and notMNIST, tighter bands.

Tolerances and why:
* mean |ours - published| per grid <= 0.08 at ``reduced``, <= 0.05 at ``paper`` (the project's
  stated goals). Sampling alone contributes ~0.02: each cell is a 256-example proportion (SE up
  to 0.031) measured independently on their models and ours; the rest is retraining with other
  seeds (and, at ``reduced``, a 10x shorter schedule).
* claim comparisons allow ``claims.SLACK`` = 0.02, about one SE of a mean of three cells.
* clean accuracy floors: >= 98% for every model (>= 99% normal) at ``reduced``, >= 99% at
  ``paper``; published 99.20-99.44%, measured on 10,000 images (SE 0.1%).
"""

import dataclasses

import pytest

from gradreg_tf import claims, data, evaluation, published, zoo

MODELS = claims.PAPER_MODELS


def reproduce(dataset_name, budget, data_dir, *, swap=None):
    """Trained (cached) models, transfer rows of both attacks, and clean accuracies.

    ``swap`` maps a model name to another model object (used to feed a broken model).
    """
    ds = data.load(dataset_name, data_dir=data_dir)
    models = {m: zoo.trained_model(ds, m, budget=budget) for m in MODELS}
    models.update(swap or {})
    rows = []
    for attack in ("fgsm", "tgsm"):
        grid = evaluation.transfer_grid(models, models, ds.x_test, ds.y_test, attack=attack,
                                        bounds=ds.bounds, n_examples=256)
        rows += [{"dataset": ds.name, **dataclasses.asdict(r)} for r in grid]
    clean = {m: evaluation.accuracy(model, ds.x_test, ds.y_test) for m, model in models.items()}
    return ds, models, rows, clean


@pytest.fixture(scope="module")
def mnist_reduced(data_dir):
    return reproduce("mnist", "reduced", data_dir)


# Known misses of the reduced budget, measured on this project's reduced models (seed 0) and
# reported in the issue notes. strict=True: if a miss disappears the test fails, so these
# marks cannot outlive the problem they describe.
KNOWN_MISS_INSENSITIVE = pytest.mark.xfail(strict=True, reason=(
    "the certainty-penalty model (λ=1000) reaches 95.8% clean accuracy after 1505 batches and "
    "levels off at 97.7-97.9% from 6000 to 9030 batches (published 99.44% after 15050), so no "
    "longer reduced schedule reaches 98%. SETUP.md §8.1: the original launcher trained "
    "'insensitive' with the double-backprop flag; that reading (insensitive_as_launched) is "
    "checked in test_insensitive_as_launched_reduced."))
KNOWN_MISS_DISTILLED = pytest.mark.xfail(strict=True, reason=(
    "reduced budget: the distilled student's logit margins (median 115) leave 80% of the first "
    "1000 test images with exactly-zero FGSM gradients, not ~all; its white-box FGSM accuracy is "
    "0.87/0.83/0.83 at eps 0.1/0.3/0.5 (published 0.992)."))
KNOWN_MISS_TGSM = pytest.mark.xfail(strict=True, reason=(
    "reduced budget: our adversarially trained model resists transferred TGSM better than the "
    "published one (black-box mean 0.422 vs 0.273 at eps 0.4), ahead of double backprop "
    "(0.387; published 0.439) at eps 0.4 and 0.5."))


@pytest.mark.parametrize("model", [
    "normal", "distilled", "advtrain",
    pytest.param("insensitive", marks=KNOWN_MISS_INSENSITIVE), "doubleback"])
def test_clean_accuracy_reduced(mnist_reduced, model):
    """Every MNIST model >= 98% clean test accuracy, normal >= 99% (published 99.20-99.44%)."""
    claim = claims.clean_accuracy_floor({model: mnist_reduced[3][model]}, floor=0.98,
                                        normal_floor=0.99)
    assert claim.holds, claim.detail


@pytest.mark.parametrize("attack", ["fgsm", "tgsm"])
def test_grid_close_to_published_reduced(mnist_reduced, attack):
    """Mean |ours - published| over the 200 cells of the MNIST grid <= 0.08 (module docstring)."""
    mad = claims.mean_abs_difference(mnist_reduced[2], published.load_transfer(dataset="mnist"),
                                     attack)
    assert mad <= 0.08, f"MNIST {attack} mean absolute difference {mad:.4f} > 0.08"


CLAIMS = {
    "distilled_masks_own_fgsm": claims.distilled_masks_own_fgsm,
    "advtrain_leads_whitebox": claims.advtrain_leads_whitebox,
    "doubleback_leads_transfer_fgsm": lambda r: claims.doubleback_leads_transfer(r, "fgsm"),
    "doubleback_leads_transfer_tgsm": lambda r: claims.doubleback_leads_transfer(r, "tgsm"),
    "gradreg_examples_transfer_fgsm": lambda r: claims.gradreg_examples_transfer(r, "fgsm"),
    "gradreg_examples_transfer_tgsm": lambda r: claims.gradreg_examples_transfer(r, "tgsm"),
}


@pytest.mark.parametrize("name", list(CLAIMS))
def test_paper_claims_hold_on_published_numbers(name):
    """Sanity of the checks themselves: every claim holds on the published MNIST grid."""
    claim = CLAIMS[name](published.load_transfer(dataset="mnist"))
    assert claim.holds, claim.detail


REDUCED_MISSES = {"distilled_masks_own_fgsm": KNOWN_MISS_DISTILLED,
                  "doubleback_leads_transfer_tgsm": KNOWN_MISS_TGSM}


@pytest.mark.parametrize("name", [pytest.param(n, marks=REDUCED_MISSES.get(n, ())) for n in CLAIMS])
def test_paper_claims_hold_reduced(mnist_reduced, name):
    """The paper's MNIST claims on our reduced-budget reproduction (see gradreg_tf.claims)."""
    claim = CLAIMS[name](mnist_reduced[2])
    assert claim.holds, f"{claim.name}: {claim.detail}"


def test_broken_doubleback_fails(mnist_reduced, data_dir):
    """Feed the double-backprop slot a model trained with penalty weight 0 (which is the normal
    recipe, same seed and batches: the identical computation), and the checks must catch it."""
    ds, models, _, _ = mnist_reduced
    broken = {**models, "doubleback": models["normal"]}
    rows = []
    for attack in ("fgsm", "tgsm"):
        grid = evaluation.transfer_grid(broken, broken, ds.x_test, ds.y_test, attack=attack,
                                        bounds=ds.bounds, n_examples=256)
        rows += [dataclasses.asdict(r) for r in grid]
    failed = [name for name, check in CLAIMS.items() if not check(rows).holds]
    assert "doubleback_leads_transfer_fgsm" in failed, failed
    assert set(REDUCED_MISSES) < set(failed), failed  # strictly more than the known misses


@pytest.mark.slow
def test_insensitive_as_launched_reduced(data_dir):
    """The launcher's reading of "insensitive" (double backprop at λ=1000) reaches the clean
    accuracy floor at the reduced budget. Slow: one more model to train (~6 minutes)."""
    ds = data.load("mnist", data_dir=data_dir)
    model = zoo.trained_model(ds, "insensitive_as_launched", budget="reduced")
    acc = evaluation.accuracy(model, ds.x_test, ds.y_test)
    assert acc >= 0.98, f"insensitive_as_launched clean accuracy {acc:.4f} < 0.98"


@pytest.mark.slow
@pytest.mark.parametrize("dataset_name", ["mnist", "notmnist"])
def test_paper_budget(dataset_name, data_dir):
    """The paper's full schedule (hours per model on a CPU): tighter bands, every claim."""
    _, _, rows, clean = reproduce(dataset_name, "paper", data_dir)
    pub = published.load_transfer(dataset=dataset_name)
    for attack in ("fgsm", "tgsm"):
        mad = claims.mean_abs_difference(rows, pub, attack)
        assert mad <= 0.05, f"{dataset_name} {attack}: mean absolute difference {mad:.4f} > 0.05"
    floor = 0.99 if dataset_name == "mnist" else 0.95
    claim = claims.clean_accuracy_floor(clean, floor=floor, normal_floor=floor)
    assert claim.holds, claim.detail
    for name, check in CLAIMS.items():
        claim = check(rows)
        assert claim.holds, f"{name}: {claim.detail}"
