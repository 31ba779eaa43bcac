"""Verdicts across training seeds (``gradreg_tf.seeds``, ``experiments/mnist_seeds.py``).

The committed seeds' per-image grids (``runs/seed<s>/mnist/transfer.per_example.npz``) are the
paper tier across seeds: every claim is asserted on every committed seed, and a miss is a strict
xfail naming the seed and the measured numbers (:data:`SEED_MISSES`).
"""

import pathlib

import numpy as np
import pytest

from gradreg_tf import published
from gradreg_tf.eval import claims, grids, seeds

REPO = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = sorted(int(p.parent.parent.name[4:]) for p in
                   (REPO / "runs").glob("seed*/mnist/transfer.per_example.npz"))

# (seed, claim) -> strict xfail with the measured numbers; empty while every claim holds.
SEED_MISSES: dict = {}


def _grid(shift: float, n=300, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for attack in ("fgsm", "tgsm"):
        for t in claims.PAPER_MODELS:
            for s in claims.PAPER_MODELS:
                for e in grids.PAPER_EPSILONS:
                    p = 0.9 if t == "doubleback" else max(0.05, 0.8 - e - shift)
                    c = rng.random(n) < p
                    rows.append({"attack": attack, "target_model": t, "source_model": s, "eps": e,
                                 "accuracy": float(c.mean()), "n_examples": n, "correct": c})
    return rows


def test_seed_report_distances_are_zero_between_identical_seeds_and_grow_with_a_shift():
    pub = published.load_transfer(dataset="mnist")
    same = seeds.seed_report({0: _grid(0.0), 1: _grid(0.0)}, pub)
    assert same.noise_floor("fgsm") == 0.0 and same.noise_floor("tgsm") == 0.0
    other = seeds.seed_report({0: _grid(0.0), 1: _grid(0.0, seed=1), 2: _grid(0.1, seed=2)}, pub)
    assert set(other.mad_between["fgsm"]) == {(0, 1), (0, 2), (1, 2)}
    assert other.mad_between["fgsm"][(0, 2)] > other.mad_between["fgsm"][(0, 1)]
    assert other.holds_on("doubleback_beats_normal_transfer_fgsm") == 3
    md = seeds.report_markdown(other, missing=[3, 4], in_training={3: {"normal": 0.9902}})
    assert "Not yet complete, so in no table below: seed 3: 1 of 5 models so far " \
           "(normal 99.02%); seed 4: no model yet." in md and "3 of 3" in md
    assert "| seed 0 | seed 1 | seed 2 |" in md and "seed 3 |" not in md
    kinds = {r["quantity"] for r in seeds.report_rows(other)}
    assert kinds == {"mad_vs_published", "claim_margin_se", "mad_between_seeds"}
    partial = [r for r in seeds.report_rows(other, in_training={3: {"normal": 0.9902}})
               if r["seed"] == 3]
    assert partial == [{"seed": 3, "quantity": "clean_accuracy", "name": "normal",
                        "value": 0.9902, "holds": ""}]


def test_seed_clean_accuracy_reads_the_finished_models_of_a_seed_in_training(tmp_path):
    """A seed still in training reports the models it has (from their manifests), and a manifest
    of another seed is refused rather than counted."""
    import json
    import shutil

    from gradreg_tf import pretrained

    src = pretrained.manifest_path("mnist", "normal")  # the shipped seed-0 manifest
    (tmp_path / "seed1" / "mnist").mkdir(parents=True)
    meta = json.loads(src.read_text())
    (tmp_path / "seed1" / "mnist" / "normal.json").write_text(json.dumps({**meta, "seed": 1}))
    assert seeds.seed_clean_accuracy(1, tmp_path) == {"normal": meta["clean_test_accuracy"]}
    assert seeds.seed_clean_accuracy(2, tmp_path) == {}
    (tmp_path / "seed2" / "mnist").mkdir(parents=True)
    shutil.copy(src, tmp_path / "seed2" / "mnist" / "normal.json")
    with pytest.raises(ValueError, match="names seed 0, expected 2"):
        seeds.seed_clean_accuracy(2, tmp_path)


def test_seed_report_needs_per_image_results_and_a_seed():
    pub = published.load_transfer(dataset="mnist")
    with pytest.raises(ValueError, match="at least one seed"):
        seeds.seed_report({}, pub)
    with pytest.raises(ValueError, match="per-image results on at least 256"):
        seeds.seed_report({0: [{**r, "correct": None} for r in _grid(0.0)]}, pub)


def test_seed_zero_is_committed():
    assert 0 in COMMITTED, "runs/seed0/mnist/transfer.per_example.npz is missing: run " \
                           "python experiments/mnist_seeds.py"


@pytest.mark.parametrize("seed, name", [
    pytest.param(s, n, marks=SEED_MISSES.get((s, n), ()), id=f"seed{s}-{n}")
    for s in COMMITTED for n in claims.CLAIMS])
def test_paper_claims_on_every_committed_seed(seed, name):
    path = REPO / "runs" / f"seed{seed}" / "mnist" / "transfer.per_example.npz"
    rows = grids.per_example_rows(grids.load_per_example(path))
    claim = claims.CLAIMS[name](rows)
    assert claim.holds, f"seed {seed}: {claim.name}: {claim.detail}"
    assert claim.decisive, f"seed {seed}: {claim.name} holds by only {claim.margin:.2f} SE"


def _readme_claim_rows():
    """The README's per-claim table: one list of cells per claim, in the table's order."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| claim | ours | our numbers (accuracy) | margin | seeds | published grid |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_readme_claim_table_states_the_committed_margins_and_seed_counts():
    """The README's per-claim table says what ``figures/mnist_transfer.json`` (verdict, margin) and
    ``figures/mnist_seeds.csv`` (on how many committed seeds) say, claim by claim, in order."""
    import csv
    import json

    rows = _readme_claim_rows()
    transfer = json.loads((REPO / "figures" / "mnist_transfer.json").read_text())["claims"]
    with open(REPO / "figures" / "mnist_seeds.csv", newline="") as f:
        seed_rows = [r for r in csv.DictReader(f) if r["quantity"] == "claim_margin_se"]
    n_seeds = len({r["seed"] for r in seed_rows})
    assert len(rows) == len(transfer) == len(claims.CLAIMS)
    for row, claim, key in zip(rows, transfer, claims.CLAIMS):
        assert claim["key"] == key
        assert row[1] == ("held" if claim["ours"] else "not held"), (key, row[1])
        assert row[3].endswith(" SE") and abs(float(row[3][:-3]) - claim["margin_se"]) <= 0.051, \
            (key, row[3], claim["margin_se"])  # the JSON keeps two decimals, the README one
        holds = sum(r["holds"] == "True" for r in seed_rows if r["name"] == key)
        assert row[4] == f"{holds} of {n_seeds}", (key, row[4], f"{holds} of {n_seeds}")
