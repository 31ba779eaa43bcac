"""Which stimuli a participant sees, in which order: a Latin-square assignment.

Every participant sees ``trials`` distinct items, each in one condition, ``trials / C`` items per
condition (C conditions), plus clean attention checks, all in a random order. Participants are
numbered as they arrive (``participant_index`` 0, 1, 2 ...). The items, shuffled once with the
protocol's seed, are cut into blocks of ``trials`` (wrapping around the list); participants
``C*b .. C*b + C-1`` get block ``b`` (mod the number of blocks) and the rows of a cyclic Latin
square: participant row ``g`` shows the block's ``j``-th item in condition ``(j + g) mod C``.
So every complete group of C participants sees every item of its block once in every
condition, and each participant sees every condition equally often. The assignment is a pure
function of ``(participant_index, protocol, study)``: O(trials) per participant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The stated, changeable parameters of a study's sessions.

    Attributes:
        trials: adversarial trials per participant (a multiple of the number of conditions).
        attention_share: share of all trials that are clean attention checks (default ~10%).
        seed: seed of the item shuffle and of every participant's order.
        practice: clean practice trials before the study (never analysed), drawn from the
            clean images that are not the participant's attention checks.
    """

    trials: int = 50
    attention_share: float = 0.1
    seed: int = 0
    practice: int = 0

    def __post_init__(self):
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"trials must be an integer >= 1, received {self.trials!r}.")
        share = self.attention_share
        if not (isinstance(share, (int, float)) and 0 <= share < 1):
            raise ValueError(f"attention_share must be in [0, 1), received {share!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, received {self.seed!r}.")
        if isinstance(self.practice, bool) or not isinstance(self.practice, int) or \
                not 0 <= self.practice <= 20:
            raise ValueError(f"practice must be an integer in [0, 20], received "
                             f"{self.practice!r}.")

    @property
    def n_attention(self) -> int:
        """Attention checks per participant: ``round(trials * share / (1 - share))``, so that
        they make up ``attention_share`` of all trials."""
        return int(round(self.trials * self.attention_share / (1 - self.attention_share)))

    @property
    def n_total(self) -> int:
        return self.trials + self.n_attention

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_protocol(protocol: Protocol, *, n_items: int, n_conditions: int,
                   n_attention_pool: int) -> None:
    """Checks that ``protocol`` fits a study.

    Raises:
        ValueError: ``trials`` not a multiple of the number of conditions, more trials than
            items, or more attention checks than clean images.
    """
    if protocol.trials % n_conditions:
        lo = protocol.trials - protocol.trials % n_conditions
        raise ValueError(f"trials per participant must be a multiple of the {n_conditions} "
                         f"conditions (so each gets the same number), received "
                         f"{protocol.trials}; e.g. {max(lo, n_conditions)} or "
                         f"{lo + n_conditions}.")
    if protocol.trials > n_items:
        raise ValueError(f"trials per participant ({protocol.trials}) exceed the study's "
                         f"{n_items} items; each participant sees an item at most once.")
    if protocol.n_attention + protocol.practice > n_attention_pool:
        practice = (f" and {protocol.practice} practice trials" if protocol.practice else "")
        raise ValueError(f"{protocol.n_attention} attention checks{practice} per participant "
                         f"exceed the study's {n_attention_pool} clean images.")


def latin_square(n: int) -> np.ndarray:
    """The cyclic Latin square of order ``n``: ``L[g, j] = (g + j) mod n``."""
    if n < 1:
        raise ValueError(f"a Latin square needs order >= 1, received {n}.")
    return (np.arange(n)[:, None] + np.arange(n)[None, :]) % n


def assign(participant_index: int, *, items: Sequence[str], conditions: Sequence[str],
           attention: Sequence[str], protocol: Protocol) -> list[tuple[str, str | None]]:
    """The ordered trials of one participant.

    Args:
        participant_index: 0 for the first participant, 1 for the second, ...
        items: item ids of the study (each exists in every condition).
        conditions: condition names.
        attention: stimulus ids of the clean attention-check images.
        protocol: trials per participant, attention share and seed.

    Returns:
        ``[(item_id or attention stimulus id, condition or None)]`` in presentation order.

    Raises:
        ValueError: a negative index or a protocol that does not fit (:func:`check_protocol`).
    """
    if isinstance(participant_index, bool) or participant_index < 0:
        raise ValueError(f"participant_index must be >= 0, received {participant_index!r}.")
    n_cond, m = len(conditions), protocol.trials
    check_protocol(protocol, n_items=len(items), n_conditions=n_cond,
                   n_attention_pool=len(attention))
    order = np.random.default_rng(protocol.seed).permutation(len(items))
    n_blocks = math.ceil(len(items) / m)
    row = participant_index % n_cond
    block = (participant_index // n_cond) % n_blocks
    chosen = order[(block * m + np.arange(m)) % len(items)]
    square = latin_square(n_cond)[row]
    trials = [(items[k], conditions[square[j % n_cond]]) for j, k in enumerate(chosen)]
    rng = np.random.default_rng([protocol.seed, participant_index])
    checks = rng.choice(len(attention), size=protocol.n_attention, replace=False)
    trials += [(attention[k], None) for k in checks]
    return [trials[k] for k in rng.permutation(len(trials))]


PRACTICE_PREFIX = "practice:"
"""Stimulus id of a practice trial: this prefix + the clean image's stimulus id."""


def session_plan(study, protocol: Protocol):
    """``plan(participant_index) -> [stimulus_id]`` for a :class:`~gradreg_study.stimuli.Study`.

    The ``protocol.practice`` practice trials (:data:`PRACTICE_PREFIX` ids, clean images other
    than the participant's attention checks) come first, then the assigned trials.

    Raises:
        ValueError: if the protocol does not fit the study (:func:`check_protocol`), at once
            rather than at the first participant.
    """
    items = [it["item_id"] for it in study.items]
    attention = [s["stimulus_id"] for s in study.attention]
    check_protocol(protocol, n_items=len(items), n_conditions=len(study.conditions),
                   n_attention_pool=len(attention))
    ids = {(s["item_id"], s["condition"]): s["stimulus_id"] for s in study.manifest["stimuli"]}

    def plan(participant_index: int) -> list[str]:
        trials = assign(participant_index, items=items, conditions=study.conditions,
                        attention=attention, protocol=protocol)
        return (practice_ids(participant_index, trials)
                + [key if cond is None else ids[(key, cond)] for key, cond in trials])

    def practice_ids(participant_index: int, trials) -> list[str]:
        if not protocol.practice:
            return []
        used = {key for key, cond in trials if cond is None}
        free = [a for a in attention if a not in used]
        rng = np.random.default_rng([protocol.seed, participant_index, 1])
        return [PRACTICE_PREFIX + free[k]
                for k in rng.choice(len(free), size=protocol.practice, replace=False)]

    return plan
