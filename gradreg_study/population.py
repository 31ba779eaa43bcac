"""The analysis population: a stated, pre-registered rule, the participant flow, and the mode.

The rule (:class:`PopulationRule`, default :data:`DEFAULT_RULE`) is fixed before the data are
seen and printed in every report: keep participants who **completed** the study, answered at
least ``min_attention`` of their clean attention checks correctly, and gave at most
``max_too_fast_share`` of their answers faster than the server's minimum plausible response
time (the export's ``too_fast`` flag). Practice answers are never analysed. Each excluded
participant gets the first failing reason in that order (not completed, attention, speed), as in
a CONSORT flow diagram (Schulz, Altman & Moher 2010, BMJ 340:c332); the flow counts
registered -> consented -> completed -> excluded (with reasons) -> analysed.

Why completers: a participant who leaves after a few answers saw an unbalanced part of their
Latin-square row; :func:`dropout_bias` measures by simulation what keeping them does to the
primary estimate.

The export columns this module relies on (:data:`PARTICIPANT_COLUMNS`,
:data:`ANSWER_COLUMNS`) are checked by :func:`check_columns`; a missing one is an error, never a
silent default.

Cost: O(answers).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
from scipy import special

PARTICIPANT_COLUMNS = ("completed", "started_at", "completed_at", "platform", "platform_pid",
                       "mode")
"""Per-participant columns of the export (repeated on each answer row)."""
ANSWER_COLUMNS = ("server_rt_ms", "too_fast", "practice", "viewport_w", "viewport_h")
"""Per-answer columns of the export."""
MODES = ("human", "simulated")


@dataclasses.dataclass(frozen=True)
class PopulationRule:
    """Who is analysed (module docstring).

    Attributes:
        require_completed: keep only participants whose ``completed`` is 1.
        min_attention: minimum attention-check accuracy, in [0, 1] (participants without
            checks are kept by this criterion).
        max_too_fast_share: maximum share of a participant's answers flagged ``too_fast``,
            in [0, 1].
    """

    require_completed: bool = True
    min_attention: float = 0.5
    max_too_fast_share: float = 0.1

    def __post_init__(self):
        for name in ("min_attention", "max_too_fast_share"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"PopulationRule.{name} must be a number in [0, 1], received "
                                 f"{value!r}.")

    def text(self) -> str:
        """The rule as one sentence for the report."""
        parts = (["completed the study"] if self.require_completed else []) + [
            f"attention-check accuracy >= {self.min_attention:g}",
            (f"at most {100 * self.max_too_fast_share:g}% of answers faster than the minimum "
             "plausible response time")]
        return ("Analysis population (pre-registered rule): participants who "
                + ", ".join(parts) + "; practice answers never analysed.")


DEFAULT_RULE = PopulationRule()


def check_columns(rows: Sequence[Mapping]) -> None:
    """Raises ValueError naming the export columns of :data:`PARTICIPANT_COLUMNS` and
    :data:`ANSWER_COLUMNS` that the rows lack (an export older than issue 21)."""
    if not rows:
        return
    have = set(rows[0])
    missing = [c for c in PARTICIPANT_COLUMNS + ANSWER_COLUMNS if c not in have]
    if missing:
        raise ValueError(
            f"the answers lack the export columns {missing} that the population rule needs "
            f"(expected {list(PARTICIPANT_COLUMNS + ANSWER_COLUMNS)}); re-export them with "
            "`human_study.py export`, or analyse every answer without a population rule "
            "(rule=None), which the report then states.")


def _flag(value, field: str, i: int) -> int:
    if value in (0, 1, "0", "1", True, False):
        return int(value)
    raise ValueError(f"answer row {i}: column {field!r} must be 0 or 1, received {value!r}.")


def is_simulated(rows: Sequence[Mapping]) -> bool:
    """True when any row's ``mode`` is ``"simulated"``.

    Raises:
        ValueError: a ``mode`` other than ``"human"`` or ``"simulated"``.
    """
    modes = {r.get("mode") for r in rows if "mode" in r}
    bad = sorted(map(str, modes - set(MODES)))
    if bad:
        raise ValueError(f"column 'mode' must be one of {list(MODES)}, received {bad}.")
    return "simulated" in modes


def drop_practice(rows: Sequence[Mapping]) -> tuple[list[Mapping], int]:
    """``(rows without practice answers, number dropped)``; practice is never analysed."""
    kept = [r for i, r in enumerate(rows) if not _flag(r["practice"], "practice", i)]
    return kept, len(rows) - len(kept)


def apply_rule(rows: Sequence[Mapping], rule: PopulationRule,
               participants: Sequence[Mapping] | None = None) -> tuple[set, dict]:
    """The participants the rule keeps, and the participant flow.

    Args:
        rows: cleaned answer rows (practice already dropped) with the export columns.
        rule: the population rule.
        participants: optional per-participant records (``participant_id``, ``completed``)
            of everyone registered, including those who never answered; by default the
            participants are those with at least one answer.

    Returns:
        ``(kept participant ids, flow)`` where flow holds ``registered``, ``consented``,
        ``completed``, ``excluded`` (``{reason: count}``, first failing reason),
        ``failing`` (``{reason: count}``, every failing reason), ``analysed``, ``rule``.
    """
    per: dict[str, dict] = {}
    for i, r in enumerate(rows):
        p = per.setdefault(r["participant_id"], {"completed": 0, "att": [0, 0], "fast": [0, 0]})
        p["completed"] = max(p["completed"], _flag(r["completed"], "completed", i))
        p["fast"][0] += _flag(r["too_fast"], "too_fast", i)
        p["fast"][1] += 1
        if r["kind"] == "attention":
            p["att"][0] += int(r["choice"] == r["original_label"])
            p["att"][1] += 1
    for i, rec in enumerate(participants or ()):
        p = per.setdefault(str(rec["participant_id"]),
                           {"completed": 0, "att": [0, 0], "fast": [0, 0]})
        p["completed"] = max(p["completed"], _flag(rec["completed"], "completed", i))
    reasons = {"not completed": lambda p: rule.require_completed and not p["completed"],
               "attention": lambda p: bool(p["att"][1])
               and p["att"][0] / p["att"][1] < rule.min_attention,
               "too fast": lambda p: bool(p["fast"][1])
               and p["fast"][0] / p["fast"][1] > rule.max_too_fast_share}
    excluded = {k: 0 for k in reasons}
    failing = {k: 0 for k in reasons}
    kept = set()
    for pid, p in per.items():
        fails = [k for k, test in reasons.items() if test(p)]
        for k in fails:
            failing[k] += 1
        if fails:
            excluded[fails[0]] += 1
        else:
            kept.add(pid)
    flow = {"registered": len(per), "consented": len(per),
            "consent_note": "registration happens only after consent (POST /api/participants "
                            "requires {\"consent\": true})",
            "completed": sum(p["completed"] for p in per.values()),
            "excluded": excluded, "failing": failing, "analysed": len(kept),
            "rule": rule.text()}
    return kept, flow


def flow_text(flow: Mapping) -> str:
    """The participant flow as one markdown line."""
    exc = ", ".join(f"{k}: {v}" for k, v in flow["excluded"].items())
    return (f"Participant flow: {flow['registered']} registered → {flow['consented']} consented "
            f"→ {flow['completed']} completed → {sum(flow['excluded'].values())} excluded "
            f"({exc}; first failing reason) → {flow['analysed']} analysed.")


def dropout_bias(*, n_studies: int = 400, n_participants: int = 40, trials_per_condition: int = 10,
                 rates: tuple[float, float] = (0.2, 0.45), participant_sd: float = 1.0,
                 dropout_every: int = 4, leave_after: tuple[int, int] = (2, 12),
                 leaver_shift: float = 1.5, seed: int = 0) -> dict:
    """The primary difference among completers vs over all answers, with dropouts, by simulation.

    Each simulated study has ``n_participants``; every ``dropout_every``-th leaves after a
    uniform ``leave_after`` number of answers (trials alternate control / treatment in a random
    order). Participants differ (logit random intercepts, SD ``participant_sd``); leavers also
    pick the target more often under treatment (``leaver_shift`` on the logit scale): dropout
    that depends on how people answer, the case that biases an analysis keeping partial
    participants. The estimand is the pre-registered one, the mean per-participant difference
    of target shares (treatment - control) in the population of completers; its truth is
    computed by quadrature (:func:`gradreg_study.intervals.population_rate`).

    Returns:
        ``{"truth", "completers", "all_answers"}`` (mean estimates over studies) and
        ``"completers_se", "all_answers_se"`` (Monte Carlo standard errors), plus settings.
    """
    from gradreg_study.intervals import population_rate

    rng = np.random.default_rng(seed)
    s, p, t = n_studies, n_participants, 2 * trials_per_condition
    leaver = (np.arange(p) % dropout_every) == dropout_every - 1
    u = rng.normal(0, participant_sd, (s, p, 1))
    cond = np.argsort(rng.random((s, p, t)), axis=-1) % 2  # 1 = treatment, balanced per person
    logit = special.logit(np.asarray(rates))[cond] + u + leaver[None, :, None] * cond * leaver_shift
    hit = rng.random((s, p, t)) < special.expit(logit)
    answered = np.ones((s, p, t), bool)
    stop = rng.integers(leave_after[0], leave_after[1] + 1, (s, p))
    answered[:, leaver, :] = np.arange(t)[None, None, :] < stop[:, leaver, None]

    def estimate(mask):
        with np.errstate(invalid="ignore", divide="ignore"):
            share = [(hit & mask & (cond == c)).sum(-1) / (mask & (cond == c)).sum(-1)
                     for c in (0, 1)]
        d = share[1] - share[0]  # NaN for a participant without both conditions
        return np.nanmean(d, axis=1)

    completers = estimate(answered & ~leaver[None, :, None])
    everyone = estimate(answered)
    truth = float(np.diff(population_rate(np.asarray(rates), participant_sd))[0])
    return {"truth": truth, "completers": float(completers.mean()),
            "completers_se": float(completers.std(ddof=1) / np.sqrt(s)),
            "all_answers": float(everyone.mean()),
            "all_answers_se": float(everyone.std(ddof=1) / np.sqrt(s)),
            "n_studies": s, "n_participants": p, "dropout_every": dropout_every,
            "leave_after": leave_after, "leaver_shift": leaver_shift}
