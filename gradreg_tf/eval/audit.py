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
* ``apgd_ce``, ``apgd_t``: :func:`gradreg_tf.attacks.apgd` (Croce & Hein, ICML 2020, the
  white-box half of AutoAttack): APGD on the cross-entropy, and APGD-T on the targeted DLR loss
  over the ``apgd_targets`` (3) classes with the highest clean logits, ``apgd_steps`` (100)
  steps, one restart each;
* ``square``: the gradient-free L∞ Square Attack (:func:`gradreg_tf.attacks.square`,
  Andriushchenko et al., ECCV 2020), ``square_queries`` (1000) queries, ``p_init`` 0.8
  (AutoAttack's), run (to save queries, as AutoAttack does) only on the images that every own
  gradient attack above left correct: its curve is the accuracy under "every gradient attack,
  then Square", and ``gradient_free_stronger_than_gradient`` is the share of images only
  Square breaks. These three are white-box only (not transferred); like PGD they are run at
  increasing eps on the examples that survived them at the previous eps;
* ``worst_case``: per example, robust only if correctly classified on the clean image and under
  every attack above (white-box, transfer and noise) at every grid eps up to eps — the strongest
  statement this audit can make; an upper bound on the true robust accuracy.

Accuracy is always measured against the true labels on the same ``n`` examples. Masking
diagnostics (:class:`Check`, the obfuscated-gradients checklist plus one of ours) judge the
attacks a standard evaluation runs, i.e. the cross-entropy ones: ``ce_whitebox(eps) =
min(acc fgsm_ce, acc pgd_ce)``; the margin attacks are the check that sees through a saturated
softmax. A model is flagged as gradient-masked when any check fires (:class:`Thresholds`).
Each check is ``"raised"``, ``"cleared"`` or ``"not evaluated"``: a check whose evidence the run
did not measure (``large_eps_not_broken`` without an eps of at least ``Thresholds.large_eps``
times the pixel range, ``whitebox_weaker_than_transfer`` with a single model) is never raised
nor cleared. The per-example results (:attr:`AuditResult.correct`) let the worst case be
recomputed on any subset of the images (:meth:`AuditResult.worst_case`,
:func:`save_per_example`, :func:`load_per_example`).

Cost: per model at most ``restarts * steps`` gradients per example still robust at the previous
eps and per loss (PGD freezes broken or stalled examples), two gradients for the FGSMs, and
``2 * n_models + 1`` forward passes of all ``n`` images per eps for the FGSM transfer and
noise scores (the PGD transfer scores re-evaluate only the examples attacked at that eps);
plus at most ``apgd_steps * (1 + apgd_targets)`` gradients per example still robust under
APGD, and ``square_queries`` forward passes per gradient survivor.
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
from gradreg_tf.attacks import apgd, fgsm_signs, pgd, predict_labels, random_sign_noise, square
from gradreg_tf.attacks.pgd import DEFAULT_STEP_FACTOR
from gradreg_tf.attacks.square import check_p_init
from gradreg_tf.eval.grids import PAPER_EPSILONS
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["APGD_CE", "APGD_T", "AUDIT_EPSILONS", "AuditResult", "AuditRow", "CSV_FIELDS",
           "Check", "GRADIENT_ATTACKS", "Diagnostic", "NOT_EVALUATED", "SQUARE", "TABLE_EPS",
           "Thresholds", "WhiteBox", "load_per_example", "robustness_audit", "save_per_example",
           "report", "summary_document", "summary_lines", "summary_markdown", "summary_rows"]

AUDIT_EPSILONS = PAPER_EPSILONS
"""The eps grid of the audit: the paper's transfer grid, 0 to 0.7 (0 = clean accuracy)."""

TABLE_EPS = (0.1, 0.2, 0.3)
"""The eps of the summary table (MNIST's customary 0.1-0.3; those on the grid are shown)."""

CSV_FIELDS = ("dataset", "budget", "model", "attack", "eps", "accuracy", "n_correct",
              "n_examples", "source", "source_attack")
"""The columns of the audit's CSV: :class:`AuditRow` with the dataset and the budget."""


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
APGD_CE = "apgd_ce"
APGD_T = "apgd_t"
SQUARE = "square"
STRONG_ATTACKS = (APGD_CE, APGD_T, SQUARE)
"""The attacks of the audit beyond FGSM/PGD (white-box only, not transferred)."""
RAISED, CLEARED, NOT_EVALUATED = "raised", "cleared", "not evaluated"
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
    GRADIENT_FREE_STRONGER = "gradient_free_stronger_than_gradient"


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
    Check.GRADIENT_FREE_STRONGER:
        "max over eps of the share of images that survive every own gradient attack (FGSM, "
        "PGD, APGD) but not Square",
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
        large_eps: the smallest eps, as a fraction of the pixel range ``upper - lower``, at
            which ``large_eps_not_broken`` is evaluated (0.5: half the range lets an attack
            erase any image); without such an eps the check is "not evaluated".

    Raises:
        ValueError: a value that is not a finite number >= 0 (NaN would switch a check off:
            ``NaN > x`` is always false), or a share/fraction above 1.
    """

    zero_gradient_share: float = 0.05
    accuracy_gap: float = 0.05
    large_eps_accuracy: float = 0.10
    margin_gap: float = 0.10
    large_eps: float = 0.5

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            ok = (not isinstance(value, (bool, np.bool_))
                  and isinstance(value, (int, float, np.integer, np.floating))
                  and math.isfinite(value) and value >= 0)
            if ok and field.name in ("zero_gradient_share", "large_eps_accuracy", "large_eps"):
                ok = value <= 1
            if not ok:
                raise ValueError(f"Thresholds.{field.name} must be a finite number >= 0 (<= 1 for "
                                 f"shares and fractions), received {value!r}.")


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
    """One masking check of one model: ``status`` "raised" (``value > threshold``),
    "cleared", or "not evaluated" (its evidence was not measured; then ``value`` is NaN and
    ``flagged`` is False)."""

    check: str
    flagged: bool
    value: float  # NaN when not evaluated (e.g. no other model to transfer from)
    threshold: float
    eps: float | None  # where the value was attained, for the per-eps checks
    description: str
    status: str = CLEARED

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
        correct: per-example results ``{(model, source, attack): bool (len(epsilons), n)}``
            (row 0: clean), every attack of every model on the model itself (``source ==
            model``) and transferred from the others; ``clean``: ``{model: bool (n,)}``.
    """

    rows: tuple[AuditRow, ...]
    diagnostics: dict
    epsilons: tuple[float, ...]
    settings: dict
    seconds: dict
    correct: dict = dataclasses.field(default_factory=dict)
    clean: dict = dataclasses.field(default_factory=dict)

    def worst_case(self, model: str, rows=None) -> np.ndarray:
        """The per-image worst-case accuracy of ``model`` vs :attr:`epsilons`, recomputed from
        the per-example results on the images ``rows`` (indices or a boolean mask; all if
        None). On all images it equals the ``worst_case`` curve.

        Raises:
            KeyError: unknown model. ValueError: empty or out-of-range ``rows``.
        """
        if model not in self.clean:
            raise KeyError(f"no per-example results for model {model!r}.")
        n = len(self.clean[model])
        index = np.arange(n) if rows is None else np.arange(n)[np.asarray(rows)]
        if index.size == 0:
            raise ValueError("rows must select at least one image, received an empty selection.")
        robust = np.broadcast_to(self.clean[model], (len(self.epsilons), n)).copy()
        for (target, _, _), ok in self.correct.items():
            if target == model:
                robust &= ok
        return np.mean(robust[:, index], axis=1)

    def not_evaluated(self, model: str) -> tuple[str, ...]:
        """The names of the checks of ``model`` whose evidence was not measured."""
        return tuple(d.check for d in self.diagnostics[model] if d.status == NOT_EVALUATED)

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
    if len(set(values)) != len(values):
        raise ValueError(f"epsilons must not repeat a value, received {list(epsilons)!r}.")
    if not any(v > 0 for v in values):
        raise ValueError(f"epsilons must contain a value > 0 (eps 0 is the clean accuracy, "
                         f"always measured; no attack would run), received {list(epsilons)!r}.")
    return tuple(sorted(set([0.0] + values)))


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
                     apgd_steps: int = 100, apgd_targets: int = 3, square_queries: int = 1000,
                     square_p_init: float = 0.8, progress: bool = False) -> AuditResult:
    """Accuracy vs eps of every model under FGSM/PGD (CE and margin), APGD-CE, APGD-T, Square,
    transfer and noise, the per-example worst case, and gradient-masking diagnostics (module
    docstring).

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
        apgd_steps: APGD-CE and APGD-T steps per run (AutoAttack: 100).
        apgd_targets: APGD-T target classes (AutoAttack: 9; 3 keeps the audit's cost down).
        square_queries: Square Attack queries per example (AutoAttack: 5000).
        square_p_init: Square Attack's initial square fraction (AutoAttack: 0.8).
        progress: show a tqdm bar over the models' stages.

    Returns:
        :class:`AuditResult`.

    Raises:
        ValueError: empty models, bad eps (negative, repeated, or none > 0), steps, restarts,
            seed, batch sizes or APGD/Square settings, ``x``
            outside ``bounds`` or of the wrong shape for a model, labels out of range, models
            with different numbers of classes.
        TypeError: integer ``x``, non-integer labels, non-string model names, ``thresholds``
            not a :class:`Thresholds`.
    """
    models = _check_models(models)
    bounds = _checks.as_bounds(bounds)
    eps_grid = _check_epsilons(epsilons)
    steps, restarts, batch_size, fgsm_batch_size = G.check_positive_ints(
        steps=steps, restarts=restarts, batch_size=batch_size, fgsm_batch_size=fgsm_batch_size)
    seed = _checks.check_seed(seed)
    apgd_steps, apgd_targets, square_queries = G.check_positive_ints(
        apgd_steps=apgd_steps, apgd_targets=apgd_targets, square_queries=square_queries)
    square_p_init = check_p_init(square_p_init)
    if not isinstance(thresholds, Thresholds):
        raise TypeError(f"thresholds must be a gradreg_tf.eval.audit.Thresholds, received "
                        f"{type(thresholds).__name__}.")
    arr = None
    classes = {}
    for name, model in models.items():
        arr = G.check_model_input(model, x, bounds=bounds, name=f"x (for model {name!r})")
        classes[name] = G.n_classes(model, arr)
    if len(set(classes.values())) != 1:
        raise ValueError(f"all models must have the same number of classes, received {classes}.")
    n_classes = next(iter(classes.values()))
    labels = _checks.check_labels(y, n_classes=n_classes, n_examples=len(arr))
    if n_classes < 4 or apgd_targets > n_classes - 1:
        raise ValueError(f"APGD-T needs >= 4 classes and 1 <= apgd_targets <= classes - 1, "
                         f"received {n_classes} classes and apgd_targets={apgd_targets}.")

    attacked = [e for e in eps_grid if e > 0]
    scores = _Scores()
    clean = {name: _predict(m, arr, batch_size) == labels for name, m in models.items()}
    zero_share, seconds = {}, {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=7 * len(models), desc="robustness audit", unit="stage")
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
            strong = {
                APGD_CE: lambda xs, ys, e: apgd(model, xs, e, bounds=bounds, y=ys, loss="ce",
                                                steps=apgd_steps, seed=seed,
                                                batch_size=batch_size),
                APGD_T: lambda xs, ys, e: apgd(model, xs, e, bounds=bounds, y=ys,
                                               loss="dlr_targeted", steps=apgd_steps,
                                               n_targets=apgd_targets, seed=seed,
                                               batch_size=batch_size),
                SQUARE: lambda xs, ys, e: square(model, xs, e, bounds=bounds, y=ys,
                                                 queries=square_queries, p_init=square_p_init,
                                                 seed=seed, batch_size=batch_size),
            }
            for attack, run in strong.items():
                start = time.perf_counter()
                robust = clean[source].copy()
                for eps in attacked:
                    # Square: only on the images every gradient attack left correct (cost)
                    todo = robust & (_gradient_survivors(scores, source, eps)
                                     if attack == SQUARE else True)
                    robust &= todo
                    rows = np.flatnonzero(todo)
                    if rows.size:
                        adv = run(arr[rows], labels[rows], eps).numpy()
                        robust[rows] = _predict(model, adv, batch_size) == labels[rows]
                    scores.put(source, source, attack, eps, robust.copy())
                seconds[source][attack] = time.perf_counter() - start
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    rows, diagnostics = [], {}
    for name in models:
        model_rows = _model_rows(name, scores.of(name), clean[name], eps_grid)
        rows += model_rows
        diagnostics[name] = _diagnose(model_rows, eps_grid, zero_share[name], thresholds,
                                      large_eps=thresholds.large_eps * (bounds.upper
                                                                        - bounds.lower),
                                      n_models=len(models),
                                      survivors={e: float(np.mean(_gradient_survivors(
                                          scores, name, e))) for e in attacked})
    settings = {
        "n_examples": len(arr), "epsilons": list(eps_grid), "bounds": list(bounds),
        "pgd_steps": steps, "pgd_restarts": restarts,
        "pgd_step_size": f"{DEFAULT_STEP_FACTOR} * eps / {steps}", "pgd_random_start": True,
        "seed": seed, "batch_size": batch_size, "fgsm_batch_size": fgsm_batch_size,
        "apgd_steps": apgd_steps, "apgd_restarts": 1, "apgd_targets": apgd_targets,
        "square_queries": square_queries, "square_p_init": square_p_init,
        "thresholds": dataclasses.asdict(thresholds),
    }
    correct = {}
    for key, per_eps in scores.correct.items():
        target = key[0]
        correct[key] = np.stack([clean[target] if e == 0 else per_eps[e] for e in eps_grid])
    return AuditResult(rows=tuple(rows), diagnostics=diagnostics, epsilons=eps_grid,
                       settings=settings, seconds=seconds, correct=correct, clean=clean)


GRADIENT_ATTACKS = tuple(a.value for a in WhiteBox) + (APGD_CE, APGD_T)
"""The model's own gradient attacks, whose survivors Square attacks."""


def _gradient_survivors(scores: "_Scores", name: str, eps: float) -> np.ndarray:
    """Per image: correct under every own gradient attack of ``name`` at ``eps``."""
    own = scores.of(name)
    return np.logical_and.reduce([own[(name, a)][eps] for a in GRADIENT_ATTACKS])


def save_per_example(result: AuditResult, path) -> None:
    """Writes the per-example results of ``result`` to the ``.npz`` ``path`` atomically.

    Keys: ``epsilons``; ``clean/<model>`` (bool ``(n,)``); ``correct/<model>/<source>/<attack>``
    (bool ``(len(epsilons), n)``). :func:`load_per_example` reads it back.
    """
    import io
    import pathlib

    from gradreg_tf.cache import atomic_write

    arrays = {"epsilons": np.asarray(result.epsilons, float)}
    for name, ok in result.clean.items():
        arrays[f"clean/{name}"] = np.asarray(ok, bool)
    for (target, source, attack), ok in result.correct.items():
        arrays[f"correct/{target}/{source}/{attack}"] = np.asarray(ok, bool)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, lambda tmp: pathlib.Path(tmp).write_bytes(buffer.getvalue()))


def load_per_example(path) -> tuple[tuple[float, ...], dict, dict]:
    """Reads a :func:`save_per_example` file: ``(epsilons, clean, correct)``.

    Raises:
        ValueError: a file without ``epsilons`` or with arrays of inconsistent shapes.
    """
    with np.load(path, allow_pickle=False) as data:
        if "epsilons" not in data.files:
            raise ValueError(f"{path} is not an audit per-example file (no 'epsilons' array).")
        epsilons = tuple(float(e) for e in data["epsilons"])
        clean = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("clean/")}
        correct = {tuple(k.split("/")[1:]): data[k] for k in data.files
                   if k.startswith("correct/")}
    n = {len(v) for v in clean.values()}
    if len(n) != 1 or any(v.shape != (len(epsilons), *n) for v in correct.values()):
        raise ValueError(f"{path}: per-example arrays of inconsistent shapes.")
    return epsilons, clean, correct


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
    for attack in STRONG_ATTACKS:
        rows += [_row(name, attack, e, at((name, attack), e)) for e in eps_grid]
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


def _diagnose(rows: list[AuditRow], eps_grid, zero_share: float, thresholds: Thresholds, *,
              large_eps: float, n_models: int, survivors: dict) -> tuple[Diagnostic, ...]:
    """The :class:`Check` s of one model from its curves (eps > 0 only); ``survivors``:
    ``{eps: share of images correct under every own gradient attack}``."""
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
        Check.WHITEBOX_WEAKER_THAN_TRANSFER: (
            _largest_gap(attacked, ce - curve(BEST_TRANSFER)) if n_models > 1
            else (math.nan, None)),
        Check.ONE_STEP_STRONGER_THAN_ITERATIVE: _largest_gap(attacked, one_step),
        Check.LARGE_EPS_NOT_BROKEN: ((float(ce[-1]), attacked[-1])
                                     if attacked and attacked[-1] >= large_eps - 1e-12
                                     else (math.nan, None)),
        Check.NOISE_STRONGER_THAN_ATTACK: _largest_gap(attacked, ce - curve(NOISE)),
        Check.CE_WEAKER_THAN_MARGIN: _largest_gap(attacked, ce - margin),
        Check.GRADIENT_FREE_STRONGER: _largest_gap(
            attacked, np.array([survivors[e] for e in attacked]) - curve(SQUARE)),
    }
    limits = {
        Check.ZERO_GRADIENTS: thresholds.zero_gradient_share,
        Check.WHITEBOX_WEAKER_THAN_TRANSFER: thresholds.accuracy_gap,
        Check.ONE_STEP_STRONGER_THAN_ITERATIVE: thresholds.accuracy_gap,
        Check.LARGE_EPS_NOT_BROKEN: thresholds.large_eps_accuracy,
        Check.NOISE_STRONGER_THAN_ATTACK: thresholds.accuracy_gap,
        Check.CE_WEAKER_THAN_MARGIN: thresholds.margin_gap,
        Check.GRADIENT_FREE_STRONGER: thresholds.accuracy_gap,
    }
    out = []
    for check in Check:
        value, eps = values[check]
        limit = limits[check]
        status = (NOT_EVALUATED if math.isnan(value) else RAISED if value > limit else CLEARED)
        out.append(Diagnostic(check=check.value, flagged=status == RAISED, value=value,
                              threshold=limit, eps=eps, description=_CHECK_TEXT[check],
                              status=status))
    return tuple(out)


def summary_rows(result: AuditResult, table_eps, *, label=str) -> list[dict]:
    """Per model: clean accuracy, best transfer, white-box PGD-CE and worst case at each of
    ``table_eps``, the strongest single attack at the largest of them, and the masking checks
    that fired or were not evaluated.

    Args:
        result: an :class:`AuditResult`.
        table_eps: the eps of the table (on ``result.epsilons``).
        label: the model's name as shown in the table (e.g.
            :func:`gradreg_tf.plotting.model_text`).
    """
    # (not Square: it attacks only the gradient attacks' survivors, so its curve is a joint one)
    single = [a.value for a in WhiteBox] + [APGD_CE, APGD_T, BEST_TRANSFER, NOISE]
    rows = []
    for name in result.models:
        row = {"model": name, "label": label(name),
               "clean": result.accuracy(name, WORST_CASE, 0.0)}
        for e in table_eps:
            row[f"transfer@{e:g}"] = result.accuracy(name, BEST_TRANSFER, e)
            row[f"whitebox_pgd_ce@{e:g}"] = result.accuracy(name, WhiteBox.PGD_CE.value, e)
            row[f"worst_case@{e:g}"] = result.accuracy(name, WORST_CASE, e)
        if table_eps:
            last = table_eps[-1]
            row["strongest_attack"] = min(single, key=lambda a: result.accuracy(name, a, last))
            row["strongest_at"] = last
        row["masking_flags"] = list(result.flags(name))
        row["not_evaluated"] = list(result.not_evaluated(name))
        rows.append(row)
    return rows


def summary_markdown(rows, table_eps) -> str:
    """The markdown table of :func:`summary_rows` (percentages; the masking checks that fired
    and those not evaluated)."""
    from gradreg_tf.eval.io import markdown_table

    def pct(v):
        return "n/a" if v != v else f"{100 * v:.1f}%"

    columns = [("label", "Model"), ("clean", "Clean")]
    columns += [(f"transfer@{e:g}", f"Best transfer ε={e:g}") for e in table_eps]
    columns += [(f"worst_case@{e:g}", f"Worst case ε={e:g}") for e in table_eps]
    columns += [("strongest", f"Strongest attack ε={table_eps[-1]:g}" if table_eps else ""),
                ("flags", "Gradient masking")]
    shown = []
    for r in rows:
        s = {k: (pct(v) if isinstance(v, float) else v) for k, v in r.items()}
        s["strongest"] = r.get("strongest_attack", "")
        s["flags"] = "yes: " + ", ".join(r["masking_flags"]) if r["masking_flags"] else "no"
        if r.get("not_evaluated"):
            s["flags"] += " (not evaluated: " + ", ".join(r["not_evaluated"]) + ")"
        shown.append(s)
    return markdown_table(shown, columns)


def summary_lines(rows, table_eps) -> list[str]:
    """One line per model of :func:`summary_rows`: clean accuracy, worst case at ``table_eps``
    and the masking checks that fired."""
    lines = []
    for row in rows:
        flags = ", ".join(row["masking_flags"]) or "none"
        worst = ", ".join(f"{100 * row[f'worst_case@{e:g}']:.1f}%" for e in table_eps)
        lines.append(f"{row['model']:>12}: clean {100 * row['clean']:.1f}%, worst case at "
                     f"{table_eps}: {worst}; masking flags: {flags}")
    return lines


def report(result: AuditResult, summary, *, per_example: str) -> dict:
    """The results of the audit's JSON, in order: settings, timing, diagnostics, the masking
    verdicts, the name of the per-example file, the summary (:func:`summary_rows`) and a note.

    Args:
        result: an :class:`AuditResult`.
        summary: its :func:`summary_rows`.
        per_example: the file name :func:`save_per_example` wrote to.
    """
    return {
        "settings": result.settings,
        "seconds_per_model": result.seconds,
        "diagnostics": {m: [d.as_dict() for d in checks]
                        for m, checks in result.diagnostics.items()},
        "masked": {m: result.masked(m) for m in result.models},
        "not_evaluated": {m: list(result.not_evaluated(m)) for m in result.models},
        "per_example": per_example,
        "summary": summary,
        "note": "The paper's robustness claims concern transfer (black-box) attacks; the "
                "worst case adds white-box FGSM/PGD on the cross-entropy and the margin, "
                "APGD-CE, APGD-T, the gradient-free Square Attack, and noise.",
    }


def summary_document(result: AuditResult, summary, table_eps, *, title: str, budget: str) -> str:
    """The audit's markdown file: a paragraph on the setup (from ``result.settings``) and
    :func:`summary_markdown`.

    Args:
        result: an :class:`AuditResult`.
        summary: its :func:`summary_rows`.
        table_eps: the eps of the table.
        title: the dataset's title (e.g. ``"MNIST"``).
        budget: the training budget's text (:func:`gradreg_tf.plan.budget_text`).
    """
    s = result.settings
    return (f"Robustness audit, {title} ({budget}; first {s['n_examples']} test images; PGD "
            f"{s['pgd_steps']} steps, {s['pgd_restarts']} restarts; APGD-CE and APGD-T "
            f"{s['apgd_steps']} steps, {s['apgd_targets']} targets; Square "
            f"{s['square_queries']} queries). The paper's claims are about transfer; the worst "
            f"case is over every attack of the audit, per image.\n\n"
            + summary_markdown(summary, table_eps))
