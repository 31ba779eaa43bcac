"""The paper's claims about the transfer grids, as checks on result rows (ours or published).

Each function takes transfer rows (dicts with ``attack, target_model, source_model, eps,
accuracy``; the columns of :data:`gradreg_tf.published.TRANSFER_FIELDS`) and returns a
:class:`Claim` saying whether it holds and by how much. The same checks run on the published
numbers (where they hold by construction of the claim) and on a reproduction, so a reader
sees both side by side (``experiments/compare_published.py``) and the tests can assert them.

Statistical slack: every grid cell is measured on 256 test images, so a single cell has a
binomial standard error up to 0.031 and a mean of three cells about 0.018. Comparisons of
means therefore allow ``slack`` = 0.02 (about one standard error of such a mean) before a
claim counts as broken; this is written next to each use.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

PAPER_MODELS = ("normal", "distilled", "advtrain", "insensitive", "doubleback")
NON_DISTILLED = ("normal", "advtrain", "insensitive", "doubleback")
SLACK = 0.02  # ≈ 1 SE of a mean of three 256-example cells (module docstring)


@dataclasses.dataclass(frozen=True)
class Claim:
    """Outcome of one check: ``holds``, and a one-line ``detail`` with the numbers."""

    name: str
    holds: bool
    detail: str


def lookup(rows: Iterable[Mapping], attack: str) -> dict:
    """``{(target, source, eps): accuracy}`` for one attack (eps rounded to 2 decimals)."""
    return {(r["target_model"], r["source_model"], round(float(r["eps"]), 2)): float(r["accuracy"])
            for r in rows if r["attack"] == attack}


def mean_abs_difference(ours: Iterable[Mapping], published: Iterable[Mapping], attack: str) -> float:
    """Mean |ours - published| over the cells present in both grids of ``attack``."""
    a, b = lookup(ours, attack), lookup(published, attack)
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"no {attack} cells in common between the two grids.")
    return sum(abs(a[k] - b[k]) for k in common) / len(common)


def blackbox_mean(grid: dict, target: str, eps: float, sources: Sequence[str] = NON_DISTILLED) -> float:
    """Mean accuracy of ``target`` over the listed sources other than itself."""
    vals = [grid[(target, s, eps)] for s in sources if s != target]
    return sum(vals) / len(vals)


def distilled_masks_own_fgsm(rows, *, eps=(0.1, 0.3, 0.5), max_drop=0.05, min_gap=0.1) -> Claim:
    """Distillation's vanishing gradients: white-box FGSM leaves it near its clean accuracy
    (within ``max_drop``), while the normal model's FGSM examples at 0.3 cost it at least
    ``min_gap`` more.

    Published MNIST: distilled <- distilled 0.992 at every eps (clean 0.996); distilled <- normal
    0.211 at 0.3. (Holds on MNIST and notMNIST; on SVHN the published white-box accuracy falls.)
    """
    g = lookup(rows, "fgsm")
    clean = g[("distilled", "distilled", 0.0)]
    white = [g[("distilled", "distilled", e)] for e in eps]
    transfer = g[("distilled", "normal", 0.3)]
    holds = min(white) >= clean - max_drop and transfer <= g[("distilled", "distilled", 0.3)] - min_gap
    return Claim("distilled: immune to own FGSM, not to transferred", holds,
                 f"clean {clean:.3f}; white-box at eps {eps}: {', '.join(f'{v:.3f}' for v in white)}; "
                 f"<- normal at 0.3: {transfer:.3f}")


def advtrain_leads_whitebox(rows, *, eps=(0.1, 0.2, 0.3), slack=SLACK) -> Claim:
    """FGSM adversarial training has the best white-box FGSM accuracy at eps <= 0.3 among the
    non-distilled models (distillation's white-box number is gradient masking).

    Published MNIST at 0.3: advtrain 0.965, doubleback 0.277, insensitive 0.113, normal 0.113.
    """
    g = lookup(rows, "fgsm")
    bad = []
    for e in eps:
        adv = g[("advtrain", "advtrain", e)]
        best_other = max(g[(m, m, e)] for m in NON_DISTILLED if m != "advtrain")
        if adv < best_other - slack:
            bad.append(f"eps {e}: advtrain {adv:.3f} < {best_other:.3f}")
    ours = ", ".join(f"{g[('advtrain', 'advtrain', e)]:.3f}" for e in eps)
    return Claim("advtrain leads white-box FGSM at eps <= 0.3", not bad,
                 "; ".join(bad) or f"advtrain white-box {ours}")


def doubleback_leads_transfer(rows, attack: str, *, eps=(0.4, 0.5, 0.6, 0.7), slack=SLACK) -> Claim:
    """Averaged over the other non-distilled sources, double backprop is the most accurate target
    at eps >= 0.4 (the paper's central transfer claim; SETUP.md §8.4).

    Published MNIST FGSM at 0.5: doubleback 0.322, insensitive 0.259, advtrain 0.094, normal 0.087.
    """
    g = lookup(rows, attack)
    bad, shown = [], []
    for e in eps:
        db = blackbox_mean(g, "doubleback", e)
        others = {m: blackbox_mean(g, m, e) for m in NON_DISTILLED if m != "doubleback"}
        best = max(others, key=others.get)
        shown.append(f"{e}: {db:.3f} vs {best} {others[best]:.3f}")
        if db < others[best] - slack:
            bad.append(f"eps {e}: doubleback {db:.3f} < {best} {others[best]:.3f}")
    return Claim(f"doubleback most robust to transferred {attack.upper()} at eps >= 0.4", not bad,
                 "; ".join(bad) or "; ".join(shown))


def gradreg_examples_transfer(rows, attack: str, *, eps=(0.3, 0.4, 0.5), slack=SLACK) -> Claim:
    """Examples crafted on the double-backprop model fool the other models at least as well as
    the normal model's do (mean over targets distilled, advtrain, insensitive).

    Published MNIST FGSM at 0.4: 0.118 (doubleback source) vs 0.340 (normal source).
    """
    g = lookup(rows, attack)
    targets = ("distilled", "advtrain", "insensitive")
    bad, shown = [], []
    for e in eps:
        db = sum(g[(t, "doubleback", e)] for t in targets) / 3
        nm = sum(g[(t, "normal", e)] for t in targets) / 3
        shown.append(f"{e}: {db:.3f} vs {nm:.3f}")
        if db > nm + slack:
            bad.append(f"eps {e}: targets' accuracy on doubleback examples {db:.3f} > normal's {nm:.3f}")
    return Claim(f"doubleback {attack.upper()} examples transfer at least as well as normal's", not bad,
                 "; ".join(bad) or "; ".join(shown))


def clean_accuracy_floor(clean: Mapping[str, float], *, floor: float, normal_floor: float) -> Claim:
    """Every model's clean test accuracy is at least ``floor`` (normal at least ``normal_floor``).

    Published MNIST: 99.30 / 99.40 / 99.20 / 99.44 / 99.42 %.
    """
    bad = [f"{m} {a:.4f}" for m, a in clean.items() if a < (normal_floor if m == "normal" else floor)]
    return Claim(f"clean accuracy >= {floor} (normal >= {normal_floor})", not bad,
                 "; ".join(bad) or ", ".join(f"{m} {a:.4f}" for m, a in clean.items()))


def transfer_claims(rows) -> list[Claim]:
    """Every grid claim above, for both attacks where it applies."""
    return [distilled_masks_own_fgsm(rows), advtrain_leads_whitebox(rows),
            doubleback_leads_transfer(rows, "fgsm"), doubleback_leads_transfer(rows, "tgsm"),
            gradreg_examples_transfer(rows, "fgsm"), gradreg_examples_transfer(rows, "tgsm")]
