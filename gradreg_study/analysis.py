"""Statistics of the study's answers: shares per condition, descriptive tests, the primary contrast.

Every adversarial answer is one of three outcomes: the attack's *target* class, the image's
*original* label, or *other* (another class or "can't tell"). Who is analysed is a stated,
pre-registered rule (:mod:`gradreg_study.population`: by default completers who pass the
attention and speed rules; practice answers never), with the participant flow in the report.
Per condition the shares of the three come with intervals that account for participants
(GEE cluster-robust intervals, :mod:`gradreg_study.intervals`; the independent Wilson intervals
are kept as ``wilson_*`` fields but are too narrow when people differ). Descriptive tests: a chi-squared test of condition x
outcome, and Fisher exact tests of the target share between every pair of conditions with
Holm's correction (these treat answers as independent: descriptive only). The primary contrast is the one the paper's interpretability claim makes
(Ross & Doshi-Velez, AAAI 2018, abstract: examples against gradient-regularized models are
more often seen as the target): the target share under ``doubleback`` minus under ``normal``,
computed per participant (each participant sees both conditions, see
:mod:`gradreg_study.design`) and tested by a paired sign-flip permutation test over
participants (and Wilcoxon's signed-rank test), with a percentile bootstrap interval over
participants, next to the GEE cluster-robust interval of the pooled rate difference. The report
also gives response times and the perturbation size per condition (:mod:`gradreg_study.report`)
and marks simulated data SIMULATED in every output (the ``mode`` column). An optional mixed-effects logistic model (participant and
item random effects) is fitted when statsmodels is installed.

Cost: O(answers) to tabulate; the permutation test and bootstrap are O(resamples x
participants).
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from gradreg_study import intervals, population, report
from gradreg_study.population import DEFAULT_RULE, PopulationRule
from gradreg_study.storage import CANT_TELL

PRIMARY = ("doubleback", "normal")
OUTCOMES = ("target", "original", "other")
_REQUIRED = ("participant_id", "kind", "condition", "item_id", "original_label", "target",
             "choice")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (NaNs when ``n == 0``).

    Raises:
        ValueError: ``k`` outside ``[0, n]`` or ``confidence`` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), received {confidence!r}.")
    if n == 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, received k={k}, n={n}.")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs are left out of the family and stay NaN)."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _int_or_none(value, field: str):
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"column {field!r} must hold integers, received {value!r}.") from None


def clean_rows(rows: Iterable[Mapping]) -> list[dict]:
    """Checks exported answer rows (from the database or its CSV) and converts their types.

    Raises:
        ValueError: a missing column, a non-integer label or choice, or an unknown kind.
    """
    out = []
    for i, row in enumerate(rows):
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise ValueError(f"answer row {i} lacks the columns {missing}; expected the export "
                             f"of `human_study.py export` (columns {list(_REQUIRED)} ...).")
        kind = row["kind"]
        if kind not in ("adversarial", "attention", "practice"):
            raise ValueError(f"answer row {i}: kind must be adversarial, attention or practice, "
                             f"received {kind!r}.")
        r = {**row, "participant_id": str(row["participant_id"]), "kind": kind,
             "condition": row["condition"] or None, "item_id": row["item_id"] or None,
             "original_label": _int_or_none(row["original_label"], "original_label"),
             "target": _int_or_none(row["target"], "target"),
             "choice": _int_or_none(row["choice"], "choice")}
        if r["choice"] is None or r["original_label"] is None or (
                kind == "adversarial" and (r["target"] is None or r["condition"] is None)):
            raise ValueError(f"answer row {i} has an empty choice, label, target or condition: "
                             f"{dict(row)}.")
        out.append(r)
    return out


def outcome(row: Mapping) -> str:
    """``"target"``, ``"original"`` or ``"other"`` (another class or can't tell)."""
    if row["choice"] == row["target"]:
        return "target"
    if row["choice"] == row["original_label"]:
        return "original"
    return "other"


def attention_accuracy(rows: Sequence[Mapping]) -> dict[str, tuple[int, int]]:
    """``{participant: (correct, checks)}`` over the clean attention checks."""
    out: dict[str, list[int]] = {}
    for r in rows:
        if r["kind"] == "attention":
            c = out.setdefault(r["participant_id"], [0, 0])
            c[0] += int(r["choice"] == r["original_label"])
            c[1] += 1
    return {p: (c[0], c[1]) for p, c in out.items()}


def exclusions(rows: Sequence[Mapping], min_attention: float) -> list[str]:
    """Participants whose attention-check accuracy is below ``min_attention`` (participants
    without checks are kept)."""
    acc = attention_accuracy(rows)
    return sorted(p for p, (k, n) in acc.items() if n and k / n < min_attention)


def _robust_bounds(rows: Sequence[Mapping], conditions: Sequence[str], confidence: float):
    """``{outcome: (low array, high array)}`` of the GEE cluster-robust intervals (NaN with
    fewer than two participants)."""
    out = {}
    for o in OUTCOMES:
        marked = [{**r, "choice": 1, "target": int(outcome(r) == o)} for r in rows
                  if r["kind"] == "adversarial"]
        _, k, n = intervals.participant_counts(marked, conditions)
        if k.shape[0] < 2:
            out[o] = (np.full(len(conditions), math.nan),) * 2
        else:
            res = intervals.cluster_robust(k, n, confidence=confidence)
            out[o] = (res["low"], res["high"])
    return out


def condition_shares(rows: Sequence[Mapping], conditions: Sequence[str], *,
                     confidence: float = 0.95) -> list[dict]:
    """Per condition: answers, counts and shares of target / original / other, with GEE
    cluster-robust intervals over participants (``{o}_low``, ``{o}_high``) and, for comparison,
    the independent Wilson intervals (``wilson_{o}_low``, ``wilson_{o}_high``); and the
    can't-tell count (part of other)."""
    robust = _robust_bounds(rows, conditions, confidence)
    out = []
    for j, cond in enumerate(conditions):
        sub = [r for r in rows if r["kind"] == "adversarial" and r["condition"] == cond]
        n = len(sub)
        row = {"condition": cond, "n": n,
               "n_participants": len({r["participant_id"] for r in sub}),
               "n_cant_tell": sum(r["choice"] == CANT_TELL for r in sub)}
        for o in OUTCOMES:
            k = sum(outcome(r) == o for r in sub)
            lo, hi = wilson_interval(k, n, confidence)
            row.update({f"n_{o}": k, f"share_{o}": k / n if n else math.nan,
                        f"{o}_low": float(robust[o][0][j]), f"{o}_high": float(robust[o][1][j]),
                        f"wilson_{o}_low": lo, f"wilson_{o}_high": hi})
        out.append(row)
    return out


def descriptive_tests(shares: Sequence[Mapping]) -> dict:
    """Chi-squared test of condition x outcome and pairwise Fisher exact tests of the target
    share (target vs not), Holm-adjusted over all pairs.

    Returns:
        ``{"chi2": {...}, "pairwise": [{"a", "b", "odds_ratio", "p", "p_holm"}]}``.
    """
    table = np.array([[s[f"n_{o}"] for o in OUTCOMES] for s in shares if s["n"]])
    chi = {"statistic": math.nan, "dof": 0, "p": math.nan}
    if table.shape[0] >= 2:
        table = table[:, table.sum(0) > 0]
        if table.shape[1] >= 2:
            res = stats.chi2_contingency(table)
            chi = {"statistic": float(res.statistic), "dof": int(res.dof),
                   "p": float(res.pvalue)}
    pairs = []
    for i, a in enumerate(shares):
        for b in shares[i + 1:]:
            if not (a["n"] and b["n"]):
                continue
            res = stats.fisher_exact([[a["n_target"], a["n"] - a["n_target"]],
                                      [b["n_target"], b["n"] - b["n_target"]]])
            pairs.append({"a": a["condition"], "b": b["condition"],
                          "share_a": a["share_target"], "share_b": b["share_target"],
                          "odds_ratio": float(res.statistic), "p": float(res.pvalue)})
    for pair, adj in zip(pairs, holm([p["p"] for p in pairs])):
        pair["p_holm"] = float(adj)
    return {"chi2": chi, "pairwise": pairs}


def participant_target_shares(rows: Sequence[Mapping], condition: str) -> dict[str, float]:
    """``{participant: target share}`` over the participant's answers in ``condition``."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        if r["kind"] == "adversarial" and r["condition"] == condition:
            c = counts.setdefault(r["participant_id"], [0, 0])
            c[0] += int(r["choice"] == r["target"])
            c[1] += 1
    return {p: k / n for p, (k, n) in counts.items()}


def paired_test(treatment: np.ndarray, control: np.ndarray, *, n_permutations: int = 9999,
                n_bootstrap: int = 9999, confidence: float = 0.95, seed: int = 0) -> dict:
    """Paired comparison of per-participant values: mean difference, sign-flip permutation
    p-value (two-sided; exact when ``2**n <= n_permutations``), Wilcoxon signed-rank p-value
    and a percentile bootstrap interval of the mean difference over participants.

    Raises:
        ValueError: arrays of different lengths.
    """
    t, c = np.asarray(treatment, float), np.asarray(control, float)
    if t.shape != c.shape or t.ndim != 1:
        raise ValueError(f"treatment and control must be 1-D arrays of one length, received "
                         f"shapes {t.shape} and {c.shape}.")
    n = len(t)
    d = t - c
    out = {"n_participants": n, "mean_treatment": float(t.mean()) if n else math.nan,
           "mean_control": float(c.mean()) if n else math.nan,
           "mean_difference": float(d.mean()) if n else math.nan,
           "p_permutation": math.nan, "permutation_exact": False, "p_wilcoxon": math.nan,
           "ci_low": math.nan, "ci_high": math.nan}
    if n < 2:
        return out
    rng = np.random.default_rng(seed)
    if np.any(d != 0):
        perm = stats.permutation_test(
            (t, c), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
            vectorized=True, n_resamples=n_permutations, alternative="two-sided", rng=rng)
        out["p_permutation"] = float(perm.pvalue)
        out["permutation_exact"] = bool(2 ** n <= n_permutations)
        out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    else:
        out["p_permutation"] = out["p_wilcoxon"] = 1.0
    if n_bootstrap:
        idx = rng.integers(0, n, size=(n_bootstrap, n))
        means = d[idx].mean(axis=1)
        alpha = 1 - confidence
        out["ci_low"], out["ci_high"] = (float(q) for q in
                                         np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    return out


def primary_contrast(rows: Sequence[Mapping], treatment: str = PRIMARY[0],
                     control: str = PRIMARY[1], *, alpha: float = 0.05, **kwargs) -> dict:
    """The target share of ``treatment`` minus ``control`` at the participant level.

    Only participants with answers in both conditions count. ``kwargs`` go to
    :func:`paired_test` (``n_permutations``, ``n_bootstrap``, ``confidence``, ``seed``).

    Returns:
        :func:`paired_test`'s fields plus ``treatment``, ``control``, ``alpha`` and
        ``significant`` (permutation p < alpha).
    """
    a = participant_target_shares(rows, treatment)
    b = participant_target_shares(rows, control)
    both = sorted(set(a) & set(b))
    res = paired_test(np.array([a[p] for p in both]), np.array([b[p] for p in both]), **kwargs)
    robust = {"difference": math.nan, "low": math.nan, "high": math.nan,
              "method": intervals.ROBUST_METHOD}
    _, k, n = intervals.participant_counts(rows, (treatment, control))
    if k.shape[0] >= 2 and np.all(n.sum(0) > 0):
        fit = intervals.cluster_robust(k, n, contrast=(0, 1),
                                       confidence=kwargs.get("confidence", 0.95))
        robust.update(difference=fit["difference"], low=fit["difference_low"],
                      high=fit["difference_high"])
    return {"treatment": treatment, "control": control, "alpha": alpha, **res,
            "significant": bool(res["p_permutation"] < alpha), "pooled_robust": robust}


def mixed_effects(rows: Sequence[Mapping], conditions: Sequence[str], *,
                  reference: str = PRIMARY[1], seed: int = 0) -> dict:
    """Logistic mixed model ``P(target) ~ condition`` with participant and item random
    intercepts (statsmodels ``BinomialBayesMixedGLM``, variational Bayes, from a random start
    drawn with ``seed``: the same rows and seed give the same fit).

    Returns:
        ``{"fitted": True, "coefficients": {condition: {"mean", "sd"}}, ...}`` on the log-odds
        scale relative to ``reference``, or ``{"fitted": False, "reason": ...}`` when
        statsmodels is not installed or the model cannot be fitted.
    """
    try:
        import pandas as pd
        from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
    except ImportError:
        return {"fitted": False, "reason": "statsmodels (and pandas) not installed"}
    adv = [r for r in rows if r["kind"] == "adversarial"]
    if reference not in conditions or len({r["participant_id"] for r in adv}) < 2:
        return {"fitted": False, "reason": "needs the reference condition and >= 2 participants"}
    frame = pd.DataFrame({"target": [int(outcome(r) == "target") for r in adv],
                          "condition": pd.Categorical([r["condition"] for r in adv],
                                                      categories=list(conditions)),
                          "participant": [r["participant_id"] for r in adv],
                          "item": [r["item_id"] for r in adv]})
    formula = f"target ~ C(condition, Treatment({reference!r}))"
    try:
        model = BinomialBayesMixedGLM.from_formula(
            formula, {"participant": "0 + C(participant)", "item": "0 + C(item)"}, frame)
        fit = model.fit_vb(rng=seed)  # its random start: seeded, so a rerun gives the same fit
    except Exception as err:  # noqa: BLE001 - report, do not fail the whole analysis
        return {"fitted": False, "reason": f"{type(err).__name__}: {err}"}
    coefs = {}
    for name, mean, sd in zip(model.exog_names, fit.fe_mean, fit.fe_sd):
        label = name.split("[T.")[-1].rstrip("]") if "[T." in name else name
        coefs[label] = {"mean": float(mean), "sd": float(sd)}
    return {"fitted": True, "formula": formula, "random_effects": ["participant", "item"],
            "coefficients": coefs, "method": "BinomialBayesMixedGLM.fit_vb (statsmodels)"}


@dataclasses.dataclass
class Analysis:
    """Everything :func:`analyze` computes (JSON-ready dicts and lists)."""

    conditions: list[str]
    n_participants: int
    n_answers: int
    excluded: list[str]
    min_attention: float
    attention: dict
    shares: list[dict]
    tests: dict
    primary: dict
    mixed: dict
    simulated: bool = False
    rule: str = "no population rule: every answer analysed (legacy export)"
    flow: dict = dataclasses.field(default_factory=dict)
    practice_dropped: int = 0
    response_times: list = dataclasses.field(default_factory=list)
    perturbation: dict = dataclasses.field(
        default_factory=lambda: {"reported": False, "reason": "no stimulus metadata given"})
    interval_method: str = intervals.ROBUST_METHOD
    viewports: dict = dataclasses.field(default_factory=lambda: {"n": 0})

    def record(self) -> dict:
        """JSON-ready dict of every field; ``"simulated"`` is always this analysis' verdict."""
        return {**dataclasses.asdict(self), "simulated": bool(self.simulated)}


_RULE_DEFAULT = object()


def analyze(rows: Iterable[Mapping], conditions: Sequence[str], *,
            primary: tuple[str, str] = PRIMARY, alpha: float = 0.05,
            min_attention: float | None = None, confidence: float = 0.95,
            n_permutations: int = 9999, n_bootstrap: int = 9999, seed: int = 0,
            mixed: bool = True, rule: PopulationRule | None = _RULE_DEFAULT,
            participants: Sequence[Mapping] | None = None,
            stimuli: Sequence[Mapping] | None = None,
            simulated: bool | None = None) -> Analysis:
    """The study's analysis (module docstring) of exported answer rows.

    Args:
        rows: answers as :meth:`gradreg_study.storage.Store.rows` or its CSV export.
        conditions: the study's conditions, in display order.
        primary: ``(treatment, control)`` of the primary contrast.
        alpha: significance level of the primary test.
        min_attention: exclude participants whose attention-check accuracy is below this
            (overrides ``rule.min_attention``; 0.5 when ``rule`` is None).
        confidence: level of the Wilson and bootstrap intervals.
        n_permutations: permutation-test resamples.
        n_bootstrap: bootstrap resamples.
        seed: seed of the resampling.
        mixed: also fit the mixed-effects model when statsmodels is installed.
        rule: the pre-registered analysis population (default
            :data:`gradreg_study.population.DEFAULT_RULE`; it needs the export columns of
            :func:`gradreg_study.population.check_columns`). None analyses every answer of every
            participant (an old export without those columns), excluding only by attention, and
            the report says so.
        participants: per-participant records of everyone registered (for the flow), or None.
        stimuli: the study's stimulus metadata, for the perturbation size per condition.
        simulated: the source says the answers are simulated (e.g. the database's meta). The
            result is simulated when this is True *or* any row's ``mode`` is ``"simulated"``;
            False can never make simulated rows human.

    Returns:
        :class:`Analysis`.

    Raises:
        ValueError: malformed rows, missing export columns (with a rule), a primary condition
            not among ``conditions``, or ``min_attention`` / ``alpha`` outside [0, 1].
    """
    rows = clean_rows(rows)
    if rule is _RULE_DEFAULT:
        rule = DEFAULT_RULE
    is_sim = population.is_simulated(rows) or bool(simulated)
    conditions = list(conditions)
    bad = [c for c in primary if c not in conditions]
    if bad or len(primary) != 2 or primary[0] == primary[1]:
        raise ValueError(f"primary must be two different conditions of {conditions}, "
                         f"received {tuple(primary)}.")
    if min_attention is None:
        min_attention = rule.min_attention if rule is not None else 0.5
    if not 0 <= min_attention <= 1 or not 0 < alpha < 1:
        raise ValueError(f"min_attention must be in [0, 1] and alpha in (0, 1), received "
                         f"{min_attention!r} and {alpha!r}.")
    unknown = sorted({r["condition"] for r in rows if r["kind"] == "adversarial"}
                     - set(conditions))
    if unknown:
        raise ValueError(f"answers name conditions {unknown} that are not among {conditions}.")
    n_practice, flow, rule_text = 0, {}, Analysis.rule
    if rule is not None:
        population.check_columns(rows)
        rule = dataclasses.replace(rule, min_attention=min_attention)
        rows, n_practice = population.drop_practice(rows)
        keep, flow = population.apply_rule(rows, rule, participants)
        excluded = sorted({r["participant_id"] for r in rows} - keep)
        rule_text = rule.text()
    else:
        n_practice = sum(r["kind"] == "practice" for r in rows)  # never analysed
        rows = [r for r in rows if r["kind"] != "practice"]
        excluded = exclusions(rows, min_attention)
    accuracy = attention_accuracy(rows)
    kept = [r for r in rows if r["participant_id"] not in set(excluded)]
    shares = condition_shares(kept, conditions, confidence=confidence)
    return Analysis(
        simulated=is_sim, rule=rule_text, flow=flow, practice_dropped=n_practice,
        response_times=report.response_times(kept, conditions),
        viewports=report.viewports(kept),
        perturbation=report.perturbation_sizes(kept, conditions, stimuli),
        conditions=conditions,
        n_participants=len({r["participant_id"] for r in kept}),
        n_answers=sum(r["kind"] == "adversarial" for r in kept),
        excluded=excluded, min_attention=min_attention,
        attention={"participants": len(accuracy),
                   "mean_accuracy": (float(np.mean([k / n for k, n in accuracy.values()]))
                                     if accuracy else math.nan)},
        shares=shares, tests=descriptive_tests(shares),
        primary=primary_contrast(kept, *primary, alpha=alpha, n_permutations=n_permutations,
                                 n_bootstrap=n_bootstrap, confidence=confidence, seed=seed),
        mixed=(mixed_effects(kept, conditions, reference=primary[1], seed=seed) if mixed
               else {"fitted": False, "reason": "not requested"}))


SIMULATED_BANNER = ("**SIMULATED** participants (human_study.py simulate), not human data: "
                    "every number below comes from a simulation.")


def summary_rows(result: Analysis) -> list[dict]:
    """One CSV row per condition: counts, shares and intervals, the Holm-adjusted Fisher
    p-value of its target share against the primary control, the median perturbation size and
    ``simulated`` (1 when the data are simulated)."""
    control = result.primary["control"]
    p_vs = {}
    for pair in result.tests["pairwise"]:
        if control in (pair["a"], pair["b"]):
            other = pair["b"] if pair["a"] == control else pair["a"]
            p_vs[other] = pair["p_holm"]
    linf = {c["condition"]: c["median"]
            for c in result.perturbation.get("conditions", [])}
    return [{**s, f"p_holm_target_vs_{control}": p_vs.get(s["condition"], ""),
             "median_linf": linf.get(s["condition"], ""), "simulated": int(result.simulated)}
            for s in result.shares]


def _fmt_share(s: Mapping, o: str) -> str:
    if not s["n"]:
        return "–"
    return f"{100 * s[f'share_{o}']:.1f}% [{100 * s[f'{o}_low']:.1f}, {100 * s[f'{o}_high']:.1f}]"


def primary_text(result: Analysis, label=str) -> str:
    """The primary contrast as one sentence, naming conditions with ``label`` (as the table)."""
    p = result.primary
    rob = p.get("pooled_robust", {})
    return (f"Primary contrast (target share, {label(p['treatment'])} − {label(p['control'])}, "
            f"{p['n_participants']} participants): mean per-participant difference "
            f"{100 * p['mean_difference']:+.1f} points, participant bootstrap interval "
            f"[{100 * p['ci_low']:+.1f}, {100 * p['ci_high']:+.1f}]; pooled difference "
            f"{100 * rob.get('difference', math.nan):+.1f} points, GEE cluster-robust interval "
            f"[{100 * rob.get('low', math.nan):+.1f}, {100 * rob.get('high', math.nan):+.1f}]; "
            f"paired permutation p = {p['p_permutation']:.4g} (Wilcoxon p = "
            f"{p['p_wilcoxon']:.4g}); {'significant' if p['significant'] else 'not significant'}"
            f" at α = {p['alpha']:g}.")


def _linf_text(result: Analysis, cond: str) -> str:
    for c in result.perturbation.get("conditions", []):
        if c["condition"] == cond and c["n"]:
            return f"{c['median']:.2f}"
    return "–"


def markdown(result: Analysis, *, label=str, note: str = "") -> str:
    """The analysis as markdown: the SIMULATED banner (simulated data), the population rule and
    participant flow, the shares table, the primary contrast, tests, response times and the
    mixed model; every condition named by ``label`` (table and primary line alike)."""
    lines = ([f"# {SIMULATED_BANNER}", ""] if result.simulated else []) + [
        result.rule]
    if result.flow:
        lines.append(population.flow_text(result.flow))
    lines += ["", "| condition | answers | median L∞ | target | original | other (can't tell) |",
              "|---|---|---|---|---|---|"]
    for s in result.shares:
        lines.append(f"| {label(s['condition'])} | {s['n']} | "
                     f"{_linf_text(result, s['condition'])} | {_fmt_share(s, 'target')} | "
                     f"{_fmt_share(s, 'original')} | {_fmt_share(s, 'other')} "
                     f"({s['n_cant_tell']}) |")
    p = result.primary
    lines += ["", primary_text(result, label),
              ("Chi-squared (condition x outcome, answers treated as independent: descriptive): "
               f"χ² = {result.tests['chi2']['statistic']:.2f}, "
               f"dof {result.tests['chi2']['dof']}, p = {result.tests['chi2']['p']:.3g}."),
              f"{result.n_participants} participants kept, {len(result.excluded)} excluded"
              + ("" if result.flow else
                 f" (attention-check accuracy below {result.min_attention:g})") + ".",
              f"Intervals: 95% {result.interval_method}.",
              ("Median L∞: the shown stimulus vs its clean image." if result.perturbation.get(
                  "reported") else f"Perturbation size not reported: "
                                   f"{result.perturbation.get('reason')}."),
              report.viewport_text(result.viewports),
              "", "Response times:", ""] + report.response_time_table(result.response_times,
                                                                        label)
    lines.append("")
    if result.mixed.get("fitted"):
        coefs = ", ".join(f"{label(k)}: {v['mean']:+.2f} ± {v['sd']:.2f}"
                          for k, v in result.mixed["coefficients"].items())
        lines.append(f"Mixed-effects logistic model (log-odds vs {label(p['control'])}): "
                     f"{coefs}.")
    else:
        lines.append(f"Mixed-effects model not fitted: {result.mixed.get('reason')}.")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def plot_shares(result: Analysis, *, title: str = "What people answered, per condition",
                caption: str = "", label=None):
    """Grouped bars: share of target / original / other answers per condition, with the GEE
    cluster-robust intervals; conditions named by ``label`` (default
    :func:`gradreg_tf.plotting.model_label`) in ticks and caption alike. Simulated data get
    "SIMULATED" in the title and a diagonal watermark. Returns the matplotlib Figure."""
    from gradreg_tf import plotting

    label = label or plotting.model_label
    fig = plotting.new_figure((7.2, 4.2))
    ax = fig.add_subplot()
    colours = {"target": "#d95f02", "original": "#1b9e77", "other": "#999999"}
    width = 0.26
    x = np.arange(len(result.shares))
    for j, o in enumerate(OUTCOMES):
        share = np.array([s[f"share_{o}"] for s in result.shares])
        err = np.clip([[s[f"share_{o}"] - s[f"{o}_low"] for s in result.shares],
                       [s[f"{o}_high"] - s[f"share_{o}"] for s in result.shares]], 0, None)
        ax.bar(x + (j - 1) * width, share, width, yerr=err, capsize=2.5, color=colours[o],
               label=f"{o} class" if o != "other" else "other / can't tell")
    ax.set_xticks(x, [f"{label(s['condition'])}\n(n={s['n']})" for s in result.shares])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of answers")
    ax.legend(loc="upper left", ncol=3, fontsize="small", frameon=False)
    if result.simulated:
        if "SIMULATED" not in title:
            title = f"{title} (SIMULATED)"
        fig.text(0.5, 0.5, "SIMULATED", fontsize=60, color="red", alpha=0.15, rotation=30,
                 ha="center", va="center")
    ax.set_title(title)
    p = result.primary
    text = (f"{label(p['treatment'])} − {label(p['control'])} (target share, per participant): "
            f"{100 * p['mean_difference']:+.1f} points [{100 * p['ci_low']:+.1f}, "
            f"{100 * p['ci_high']:+.1f}], permutation p = {p['p_permutation']:.3g}, "
            f"{p['n_participants']} participants")
    lines = textwrap.wrap(text, 140) + (textwrap.wrap(caption, 140) if caption else [])
    fig.text(0.01, 0.005, "\n".join(lines), fontsize="x-small", va="bottom")
    bottom = 0.02 + 0.03 * len(lines)
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    return fig
