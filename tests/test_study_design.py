"""The Latin-square assignment: balance per participant and per group, no repeated item, order."""

import collections

import numpy as np
import pytest

from gradreg_study import design

CONDITIONS = ("normal", "distilled", "advtrain", "insensitive", "doubleback")
ITEMS = [f"item{i}" for i in range(23)]
ATTENTION = [f"clean/test{i}" for i in range(8)]


def _assign(index, protocol=design.Protocol(trials=10, attention_share=0.1, seed=3)):
    return design.assign(index, items=ITEMS, conditions=CONDITIONS, attention=ATTENTION,
                         protocol=protocol)


def test_latin_square_is_latin():
    sq = design.latin_square(5)
    for k in range(5):
        assert sorted(sq[k]) == list(range(5)) and sorted(sq[:, k]) == list(range(5))


def test_each_participant_sees_items_once_and_conditions_equally():
    for index in range(12):
        trials = _assign(index)
        adv = [(k, c) for k, c in trials if c is not None]
        checks = [k for k, c in trials if c is None]
        assert len(adv) == 10 and len({k for k, _ in adv}) == 10  # each item at most once
        assert collections.Counter(c for _, c in adv) == {c: 2 for c in CONDITIONS}
        assert len(checks) == 1 and len(set(checks)) == 1 and set(checks) <= set(ATTENTION)


def test_a_group_of_participants_sees_each_item_in_every_condition():
    """Participants 5b..5b+4 share a block; together they show each of its items once in every
    condition (the Latin square's columns)."""
    for block in range(3):
        seen = collections.defaultdict(list)
        for index in range(5 * block, 5 * block + 5):
            for k, c in _assign(index):
                if c is not None:
                    seen[k].append(c)
        assert len(seen) == 10
        assert all(sorted(v) == sorted(CONDITIONS) for v in seen.values())


def test_blocks_cover_all_items_and_orders_differ():
    covered = set()
    orders = set()
    for index in range(5 * 3):
        trials = _assign(index)
        covered |= {k for k, c in trials if c is not None}
        orders.add(tuple(c for _, c in trials))
    assert covered == set(ITEMS)  # 3 blocks of 10 wrap around the 23 items
    assert len(orders) > 10  # random orders, not one fixed sequence of conditions


def test_assignment_is_a_pure_function_of_index_and_seed():
    assert _assign(7) == _assign(7)
    other_seed = design.Protocol(trials=10, attention_share=0.1, seed=4)
    assert _assign(7) != _assign(7, other_seed)


def test_attention_share_is_about_ten_percent():
    p = design.Protocol(trials=50, attention_share=0.1)
    assert p.n_attention == 6 and p.n_total == 56
    assert abs(p.n_attention / p.n_total - 0.1) < 0.01
    assert design.Protocol(trials=10, attention_share=0.0).n_attention == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"trials": 0}, "trials must be an integer >= 1"),
    ({"trials": 2.5}, "trials must be an integer"),
    ({"attention_share": 1.0}, r"attention_share must be in \[0, 1\)"),
    ({"seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_protocols_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        design.Protocol(**kwargs)


def test_protocols_that_do_not_fit_the_study_are_refused():
    with pytest.raises(ValueError, match="multiple of the 5 conditions.*12; e.g. 10 or 15"):
        _assign(0, design.Protocol(trials=12))
    with pytest.raises(ValueError, match=r"trials per participant \(25\) exceed the study's 23"):
        _assign(0, design.Protocol(trials=25))
    with pytest.raises(ValueError, match="9 attention checks per participant exceed the study's 8"):
        _assign(0, design.Protocol(trials=20, attention_share=0.3))
    with pytest.raises(ValueError, match="participant_index must be >= 0"):
        _assign(-1)


def test_rng_is_per_participant():
    """Orders differ between participants of the same Latin-square row and block."""
    a = [k for k, _ in _assign(0)]
    b = [k for k, _ in _assign(5 * 3)]  # same row (0) and block (0 after wrapping 3 blocks)
    assert sorted(x for x in a if x.startswith("item")) == sorted(x for x in b
                                                                  if x.startswith("item"))
    assert a != b
    assert np.all([isinstance(k, str) for k in a])
