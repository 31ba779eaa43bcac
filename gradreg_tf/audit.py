"""Robustness audit: how robust is each model really, and are its gradients masked?

Beyond the paper. Ross & Doshi-Velez (AAAI 2018) judged their defenses by single-step FGSM/TGSM
(mostly transferred from other models) and JSMA. Since then a defense is judged by strong
iterative white-box attacks and checked for gradient masking (Athalye, Carlini & Wagner,
"Obfuscated Gradients Give a False Sense of Security", ICML 2018, §3.1 and §5; Carlini et al.,
"On Evaluating Adversarial Robustness", 2019, §5). :func:`robustness_audit` runs, for every
model of a ``{name: model}`` mapping and every eps (L∞, in the units of ``x``):

* ``fgsm_ce``: the paper's FGSM (:func:`gradreg_tf.attacks.fgsm`, cross-entropy averaged over
  chunks of ``fgsm_batch_size`` = 1000 as the original, so saturated gradients underflow to 0);
* ``fgsm_margin``: one sign step up the Carlini-Wagner logit margin (``fgsm(loss="margin")``);
* ``pgd_ce``, ``pgd_margin``: :func:`gradreg_tf.attacks.pgd`, untargeted on the true labels,
  ``steps`` (40) steps of ``2.5 * eps / steps`` from ``restarts`` (5) random starts, on the
  cross-entropy or the margin. To save gradients, the eps are attacked in increasing order and
  an example broken at a smaller eps is not attacked again: its adversarial example lies in
  every larger ball, so the PGD accuracy at eps counts an example as robust only if it survived
  PGD at every grid eps up to eps (at least as strong as PGD at eps alone);
* ``transfer``: every other model's four white-box examples above, evaluated on this model
  (black-box transfer, the paper's setting); ``best_transfer`` is the (source, attack) with the
  lowest accuracy at each eps. The transferred PGD examples are each source's first successful
  (low-confidence) iterates, so FGSM usually transfers better;
* ``noise``: random-sign noise of size eps (:func:`gradreg_tf.attacks.random_sign_noise`);
* ``worst_case``: per example, robust only if correctly classified on the clean image and under
  every attack above (white-box, transfer and noise) at every grid eps up to eps — the strongest
  statement this audit can make; an upper bound on the true robust accuracy.

Accuracy is always measured against the true labels on the same ``n`` examples. Masking
diagnostics (:class:`Check`, the obfuscated-gradients checklist plus one of ours) judge the
attacks a standard evaluation runs, i.e. the cross-entropy ones: ``ce_whitebox(eps) =
min(acc fgsm_ce, acc pgd_ce)``; the margin attacks are the check that sees through a saturated
softmax. A model is flagged as gradient-masked when any check fires (:class:`Thresholds`).

Cost: per model at most ``restarts * steps`` gradients per example still robust at the previous
eps and per loss (PGD freezes broken or stalled examples), two gradients for the FGSMs, and
``2 * n_models + 1`` forward passes of all ``n`` images per eps for the FGSM transfer and
noise scores (the PGD transfer scores re-evaluate only the examples attacked at that eps).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from typing import Mapping, Sequence

import numpy as np

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.attacks import fgsm_signs, pgd, predict_labels, random_sign_noise
from gradreg_tf.attacks.pgd import DEFAULT_STEP_FACTOR
from gradreg_tf.evaluation import PAPER_EPSILONS
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["AUDIT_EPSILONS", "AuditResult", "AuditRow", "Check", "Diagnostic", "Thresholds",
           "WhiteBox", "robustness_audit"]

AUDIT_EPSILONS = PAPER_EPSILONS
"""The eps grid of the audit: the paper's transfer grid, 0 to 0.7 (0 = clean accuracy)."""


class WhiteBox(str, enum.Enum):
    """The white-box attacks of the audit (``<attack>_<loss>``)."""

    FGSM_CE = "fgsm_ce"
    FGSM_MARGIN = "fgsm_margin"
    PGD_CE = "pgd_ce"
    PGD_MARGIN = "pgd_margin"

    @property
    def loss(self) -> G.Loss:
        return G.Loss(self.value.split("_")[1])


NOISE = "noise"
TRANSFER = "transfer"
BEST_TRANSFER = "best_transfer"
WORST_CASE = "worst_case"


class Check(str, enum.Enum):
    """Gradient-masking checks (Athalye et al. 2018 §3.1; the last is ours)."""

    ZERO_GRADIENTS = "zero_gradients"
    WHITEBOX_WEAKER_THAN_TRANSFER = "whitebox_weaker_than_transfer"
    ONE_STEP_STRONGER_THAN_ITERATIVE = "one_step_stronger_than_iterative"
    LARGE_EPS_NOT_BROKEN = "large_eps_not_broken"
    NOISE_STRONGER_THAN_ATTACK = "noise_stronger_than_attack"
    CE_WEAKER_THAN_MARGIN = "ce_weaker_than_margin"


_CHECK_TEXT = {
    Check.ZERO_GRADIENTS: "share of images whose fgsm_ce input gradient is exactly zero",
    Check.WHITEBOX_WEAKER_THAN_TRANSFER:
        "max over eps of ce_whitebox accuracy minus best_transfer accuracy",
    Check.ONE_STEP_STRONGER_THAN_ITERATIVE:
        "max over eps and loss of pgd accuracy minus fgsm accuracy",
    Check.LARGE_EPS_NOT_BROKEN: "ce_whitebox accuracy at the largest eps",
    Check.NOISE_STRONGER_THAN_ATTACK: "max over eps of ce_whitebox accuracy minus noise accuracy",
    Check.CE_WEAKER_THAN_MARGIN:
        "max over eps of ce_whitebox accuracy minus margin white-box accuracy",
}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When a masking check fires (each a strict ``value > threshold``).

    Attributes:
        zero_gradient_share: share of images with an exactly-zero fgsm_ce gradient.
        accuracy_gap: accuracy gap (fraction) for the transfer, one-step and noise checks;
            0.05 is about 3 standard errors of a paired difference on 1000 images.
        large_eps_accuracy: ce_whitebox accuracy left at the largest eps.
        margin_gap: accuracy gap between the cross-entropy and margin white-box attacks
            (larger: the margin is a somewhat stronger loss even without masking).
    """

    zero_gradient_share: float = 0.05
    accuracy_gap: float = 0.05
    large_eps_accuracy: float = 0.10
    margin_gap: float = 0.10


@dataclasses.dataclass(frozen=True)
class AuditRow:
    """One point of an accuracy-vs-eps curve of the audit."""

    model: str  # the model evaluated
    attack: str  # a WhiteBox value, "transfer", "best_transfer", "noise" or "worst_case"
    eps: float
    accuracy: float  # n_correct / n_examples against the true labels
    n_correct: int
    n_examples: int
    source: str = ""  # transfer: the model whose white-box examples were used
    source_attack: str = ""  # transfer: which of its white-box attacks

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """One masking check of one model: ``flagged = value > threshold``."""

    check: str
    flagged: bool
    value: float  # NaN when it cannot be computed (e.g. no other model to transfer from)
    threshold: float
    eps: float | None  # where the value was attained, for the per-eps checks
    description: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """What :func:`robustness_audit` measured.

    Attributes:
        rows: every curve point (white-box, transfer candidates, best transfer, noise, worst
            case), ordered by model, then attack, then eps.
        diagnostics: ``{model: (Diagnostic, ...)}`` in :class:`Check` order.
        epsilons: the eps grid (ascending, starting at 0).
        settings: the attack settings used (steps, restarts, step rule, seed, ...).
        seconds: wall time per model and stage.
    """

    rows: tuple[AuditRow, ...]
    diagnostics: dict
    epsilons: tuple[float, ...]
    settings: dict
    seconds: dict

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.diagnostics)

    def curve(self, model: str, attack: str) -> np.ndarray:
        """Accuracy of ``model`` vs :attr:`epsilons` under ``attack`` (not ``"transfer"``).

        Raises:
            KeyError: unknown model or attack.
        """
        points = {r.eps: r.accuracy for r in self.rows
                  if r.model == model and r.attack == attack and attack != TRANSFER}
        if not points:
            raise KeyError(f"no curve for model {model!r} and attack {attack!r}.")
        return np.array([points[e] for e in self.epsilons])

    def accuracy(self, model: str, attack: str, eps: float) -> float:
        """One point of :meth:`curve` (``eps`` must be on the grid)."""
        return float(self.curve(model, attack)[self.epsilons.index(float(eps))])

    def masked(self, model: str) -> bool:
        """Whether any masking check fired for ``model``."""
        return any(d.flagged for d in self.diagnostics[model])

    def flags(self, model: str) -> tuple[str, ...]:
        """The names of the checks that fired for ``model``."""
        return tuple(d.check for d in self.diagnostics[model] if d.flagged)


def _check_models(models) -> dict:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"models must be a non-empty mapping name -> model, received "
                         f"{type(models).__name__} of length {len(models) if models else 0}.")
    bad = [k for k in models if not isinstance(k, str) or not k]
    if bad:
        raise TypeError(f"model names must be non-empty strings, received {bad!r}.")
    return dict(models)


def _check_epsilons(epsilons) -> tuple[float, ...]:
    try:
        values = [_checks.check_eps(e, name="epsilons") for e in epsilons]
    except TypeError:
        raise ValueError(f"epsilons must be a sequence of numbers >= 0, received "
                         f"{epsilons!r}.") from None
    if not values:
        raise ValueError("epsilons must contain at least one value, received an empty sequence.")
    return tuple(sorted(set([0.0] + values)))


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, received {seed!r}.")
    return int(seed)


def _predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return predict_labels(model, x, batch_size=batch_size)


class _Scores:
    """Per-example correctness ``{(target, source, attack): {eps: bool array}}``."""

    def __init__(self):
        self.correct: dict = {}

    def put(self, target: str, source: str, attack: str, eps: float, ok: np.ndarray):
        self.correct.setdefault((target, source, attack), {})[eps] = np.asarray(ok, bool)

    def of(self, target: str):
        return {(s, a): v for (t, s, a), v in self.correct.items() if t == target}


def robustness_audit(models: Mapping[str, ModelFn], x: TensorLike, y: TensorLike, *, bounds,
                     epsilons: Sequence[float] = AUDIT_EPSILONS, steps: int = 40,
                     restarts: int = 5, seed: int = 0, batch_size: int = 1000,
                     fgsm_batch_size: int = 1000, thresholds: Thresholds = Thresholds(),
                     progress: bool = False) -> AuditResult:
    """Accuracy vs eps of every model under FGSM/PGD (CE and margin), transfer and noise, the
    per-example worst case, and gradient-masking diagnostics (module docstring).

    Args:
        models: ``{name: model}``; each a Keras model (``training=False``) or callable
            returning logits, all with the same input shape and classes. Every model is both
            attacked and a transfer source for the others.
        x: test inputs within ``bounds`` (e.g. the first 1000 test images).
        y: true integer labels.
        bounds: ``(lower, upper)`` pixel range of the dataset.
        epsilons: L∞ sizes in the units of ``x``; sorted, deduplicated, 0 added (clean).
        steps: PGD steps per restart (step size ``2.5 * eps / steps``).
        restarts: PGD random restarts.
        seed: seed of PGD's random starts and of the noise's signs.
        batch_size: examples per PGD chunk and per forward pass.
        fgsm_batch_size: chunk of the paper's chunk-mean FGSM gradient (the original: 1000).
        thresholds: when the masking checks fire.
        progress: show a tqdm bar over the models' stages.

    Returns:
        :class:`AuditResult`.

    Raises:
        ValueError: empty models, bad eps, steps, restarts, seed or batch sizes, ``x``
            outside ``bounds`` or of the wrong shape for a model, labels out of range, models
            with different numbers of classes.
        TypeError: integer ``x``, non-integer labels, non-string model names, ``thresholds``
            not a :class:`Thresholds`.
    """
    models = _check_models(models)
    bounds = _checks.as_bounds(bounds)
    eps_grid = _check_epsilons(epsilons)
    steps = G.check_positive_int(steps, name="steps")
    restarts = G.check_positive_int(restarts, name="restarts")
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    fgsm_batch_size = G.check_positive_int(fgsm_batch_size, name="fgsm_batch_size")
    seed = _check_seed(seed)
    if not isinstance(thresholds, Thresholds):
        raise TypeError(f"thresholds must be a gradreg_tf.audit.Thresholds, received "
                        f"{type(thresholds).__name__}.")
    arr = None
    classes = {}
    for name, model in models.items():
        arr = G.check_model_input(model, x, bounds=bounds, name=f"x (for model {name!r})")
        classes[name] = G.n_classes(model, arr)
    if len(set(classes.values())) != 1:
        raise ValueError(f"all models must have the same number of classes, received {classes}.")
    labels = _checks.check_labels(y, n_classes=next(iter(classes.values())), n_examples=len(arr))

    attacked = [e for e in eps_grid if e > 0]
    scores = _Scores()
    clean = {name: _predict(m, arr, batch_size) == labels for name, m in models.items()}
    zero_share, seconds = {}, {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=4 * len(models), desc="robustness audit", unit="stage")
    try:
        for source, model in models.items():
            seconds[source] = {}
            start = time.perf_counter()
            for attack in (WhiteBox.FGSM_CE, WhiteBox.FGSM_MARGIN):
                signs = fgsm_signs(model, arr, bounds=bounds, y=labels, loss=attack.loss,
                                   batch_size=fgsm_batch_size)
                if attack is WhiteBox.FGSM_CE:
                    flat = signs.reshape(len(arr), -1)
                    zero_share[source] = float(np.mean(np.all(flat == 0, axis=1)))
                for eps in attacked:
                    adv = np.clip(arr + np.asarray(eps, arr.dtype) * signs, bounds.lower,
                                  bounds.upper)
                    for target, target_model in models.items():
                        scores.put(target, source, attack.value, eps,
                                   _predict(target_model, adv, batch_size) == labels)
            seconds[source]["fgsm"] = time.perf_counter() - start
            if bar is not None:
                bar.update(1)
            for attack in (WhiteBox.PGD_CE, WhiteBox.PGD_MARGIN):
                start = time.perf_counter()
                robust = clean[source].copy()
                # the other models on the current examples (the clean ones until attacked)
                others = {t: clean[t].copy() for t in models if t != source}
                for eps in attacked:
                    rows = np.flatnonzero(robust)  # only these examples change at this eps
                    if rows.size:
                        adv = pgd(model, arr[rows], eps, bounds=bounds, y=labels[rows],
                                  steps=steps, restarts=restarts, loss=attack.loss, seed=seed,
                                  batch_size=batch_size).numpy()
                        robust[rows] = _predict(model, adv, batch_size) == labels[rows]
                        for target, ok in others.items():
                            ok[rows] = _predict(models[target], adv, batch_size) == labels[rows]
                    scores.put(source, source, attack.value, eps, robust.copy())
                    for target, ok in others.items():
                        scores.put(target, source, attack.value, eps, ok.copy())
                seconds[source][attack.value] = time.perf_counter() - start
                if bar is not None:
                    bar.update(1)
            start = time.perf_counter()
            for eps in attacked:
                noisy = random_sign_noise(arr, eps, bounds=bounds, seed=seed).numpy()
                scores.put(source, source, NOISE, eps, _predict(model, noisy, batch_size) == labels)
            seconds[source]["noise"] = time.perf_counter() - start
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    rows, diagnostics = [], {}
    for name in models:
        model_rows = _model_rows(name, scores.of(name), clean[name], eps_grid)
        rows += model_rows
        diagnostics[name] = _diagnose(model_rows, eps_grid, zero_share[name], thresholds)
    settings = {
        "n_examples": len(arr), "epsilons": list(eps_grid), "bounds": list(bounds),
        "pgd_steps": steps, "pgd_restarts": restarts,
        "pgd_step_size": f"{DEFAULT_STEP_FACTOR} * eps / {steps}", "pgd_random_start": True,
        "seed": seed, "batch_size": batch_size, "fgsm_batch_size": fgsm_batch_size,
        "thresholds": dataclasses.asdict(thresholds),
    }
    return AuditResult(rows=tuple(rows), diagnostics=diagnostics, epsilons=eps_grid,
                       settings=settings, seconds=seconds)


def _row(model, attack, eps, ok, **kw) -> AuditRow:
    n_correct = int(np.sum(ok))
    return AuditRow(model=model, attack=attack, eps=float(eps), accuracy=n_correct / len(ok),
                    n_correct=n_correct, n_examples=len(ok), **kw)


def _model_rows(name: str, correct: dict, clean: np.ndarray, eps_grid) -> list[AuditRow]:
    """The curves of one model from its per-example correctness arrays."""
    def at(key, eps):
        return clean if eps == 0 else correct[key][eps]

    rows = []
    for attack in WhiteBox:
        rows += [_row(name, attack.value, e, at((name, attack.value), e)) for e in eps_grid]
    foreign = sorted(k for k in correct if k[0] != name)
    for source, attack in foreign:
        rows += [_row(name, TRANSFER, e, at((source, attack), e), source=source,
                      source_attack=attack) for e in eps_grid]
    for e in eps_grid:
        if foreign:
            source, attack = min(foreign, key=lambda k: (np.sum(at(k, e)), k))
            rows.append(_row(name, BEST_TRANSFER, e, at((source, attack), e), source=source,
                             source_attack=attack))
        else:
            rows.append(AuditRow(name, BEST_TRANSFER, float(e), math.nan, 0, len(clean)))
    rows += [_row(name, NOISE, e, at((name, NOISE), e)) for e in eps_grid]
    robust = clean.copy()
    for e in eps_grid:
        for key in correct:
            robust &= at(key, e)
        rows.append(_row(name, WORST_CASE, e, robust))
    return rows


def _largest_gap(eps_grid, gaps) -> tuple[float, float | None]:
    gaps = np.asarray(gaps, float)
    if gaps.size == 0 or np.all(np.isnan(gaps)):
        return math.nan, None
    i = int(np.nanargmax(gaps))
    return float(gaps[i]), float(eps_grid[i])


def _diagnose(rows: list[AuditRow], eps_grid, zero_share: float,
              thresholds: Thresholds) -> tuple[Diagnostic, ...]:
    """The :class:`Check` s of one model from its curves (eps > 0 only)."""
    attacked = [e for e in eps_grid if e > 0]

    def curve(attack):
        points = {r.eps: r.accuracy for r in rows if r.attack == attack}
        return np.array([points[e] for e in attacked])

    ce = np.minimum(curve(WhiteBox.FGSM_CE.value), curve(WhiteBox.PGD_CE.value))
    margin = np.minimum(curve(WhiteBox.FGSM_MARGIN.value), curve(WhiteBox.PGD_MARGIN.value))
    one_step = np.maximum(curve(WhiteBox.PGD_CE.value) - curve(WhiteBox.FGSM_CE.value),
                          curve(WhiteBox.PGD_MARGIN.value) - curve(WhiteBox.FGSM_MARGIN.value))
    values = {
        Check.ZERO_GRADIENTS: (zero_share, None),
        Check.WHITEBOX_WEAKER_THAN_TRANSFER: _largest_gap(attacked,
                                                          ce - curve(BEST_TRANSFER)),
        Check.ONE_STEP_STRONGER_THAN_ITERATIVE: _largest_gap(attacked, one_step),
        Check.LARGE_EPS_NOT_BROKEN: ((float(ce[-1]), attacked[-1]) if attacked
                                     else (math.nan, None)),
        Check.NOISE_STRONGER_THAN_ATTACK: _largest_gap(attacked, ce - curve(NOISE)),
        Check.CE_WEAKER_THAN_MARGIN: _largest_gap(attacked, ce - margin),
    }
    limits = {
        Check.ZERO_GRADIENTS: thresholds.zero_gradient_share,
        Check.WHITEBOX_WEAKER_THAN_TRANSFER: thresholds.accuracy_gap,
        Check.ONE_STEP_STRONGER_THAN_ITERATIVE: thresholds.accuracy_gap,
        Check.LARGE_EPS_NOT_BROKEN: thresholds.large_eps_accuracy,
        Check.NOISE_STRONGER_THAN_ATTACK: thresholds.accuracy_gap,
        Check.CE_WEAKER_THAN_MARGIN: thresholds.margin_gap,
    }
    out = []
    for check in Check:
        value, eps = values[check]
        limit = limits[check]
        out.append(Diagnostic(check=check.value, flagged=bool(value > limit), value=value,
                              threshold=limit, eps=eps, description=_CHECK_TEXT[check]))
    return tuple(out)
