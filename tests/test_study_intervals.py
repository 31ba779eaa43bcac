"""Participant-clustered intervals: coverage by simulation when people differ (issue 21), the
old independent Wilson intervals failing the same test, and the bootstrap on known counts."""

import numpy as np
import pytest

from gradreg_study import intervals

# Scaling: the cluster-robust coverage is O(studies x participants x conditions), analytic
# (2000 studies: well under a second); the bootstrap coverage adds O(studies x resamples x
# participants) and runs here on 300 studies x 999 resamples (a few seconds on one core).
SETTINGS = {"n_participants": 40, "trials_per_condition": 10, "participant_sd": 1.0}


def test_cluster_robust_intervals_cover_when_participants_differ():
    res = intervals.coverage(n_studies=2000, n_resamples=0, seed=1, **SETTINGS)
    assert min(res["robust_rate"]) >= 0.93, res
    assert res["robust_difference"] >= 0.93, res
    # the old per-condition Wilson intervals treat answers as independent: they fail
    assert max(res["wilson_rate"]) < 0.85, res


def test_bootstrap_coverage_is_measured_and_wilson_fails():
    res = intervals.coverage(n_studies=300, n_resamples=999, seed=2, **SETTINGS)
    # the percentile bootstrap undercovers a little at 40 participants; the difference holds
    assert res["bootstrap_difference"] >= 0.93, res
    assert np.mean(res["bootstrap_rate"]) >= 0.90, res
    assert max(res["wilson_rate"]) < 0.85, res


def test_without_participant_differences_wilson_is_fine_too():
    res = intervals.coverage(n_studies=2000, n_resamples=0, seed=3, n_participants=40,
                             trials_per_condition=10, participant_sd=0.0)
    assert min(res["wilson_rate"]) >= 0.93 and min(res["robust_rate"]) >= 0.93, res


def test_population_rate_against_direct_integration():
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1.0, 2_000_000)
    direct = np.mean(1 / (1 + np.exp(-(np.log(0.2 / 0.8) + u))))
    assert intervals.population_rate(0.2, 1.0) == pytest.approx(direct, abs=1e-3)
    assert intervals.population_rate(0.2, 0.0) == pytest.approx(0.2)


def test_cluster_robust_on_known_counts():
    # two participants, one condition: rates 1/2 and 3/4 -> pooled 4/6
    k, n = np.array([[1.0], [3.0]]), np.array([[2.0], [4.0]])
    res = intervals.cluster_robust(k, n)
    assert res["rate"][0] == pytest.approx(4 / 6)
    assert res["low"][0] < 4 / 6 < res["high"][0]
    same = intervals.cluster_robust(np.array([[1.0, 0], [1, 0], [1, 0]]), np.ones((3, 2)) ,
                                    contrast=(0, 1))
    assert same["difference"] == 1.0 and same["difference_low"] == same["difference_high"] == 1.0
    with pytest.raises(ValueError, match=r"received shapes \(2, 1\) and \(2, 2\)"):
        intervals.cluster_robust(k, np.ones((2, 2)))
    with pytest.raises(ValueError, match="need >= 2 participants, received 1"):
        intervals.cluster_robust(k[:1], n[:1])


def test_cluster_bootstrap_identical_participants_give_a_point():
    k = np.tile([[3.0, 1.0]], (5, 1))
    res = intervals.cluster_bootstrap(k, np.full_like(k, 4.0), contrast=(0, 1), n_resamples=200)
    assert res["low"].tolist() == res["high"].tolist() == [0.75, 0.25]
    assert res["difference_low"] == res["difference_high"] == pytest.approx(0.5)


def test_cluster_robust_matches_statsmodels_gee():
    """Independent check: an intercept-only logistic GEE (independence working correlation,
    participant groups) has the pooled rate as its fit and our sandwich variance without the
    CR1 factor P/(P-1) as its robust covariance."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(5)
    k, n = intervals.simulate_counts(rng, n_studies=1, n_participants=12, trials_per_condition=8,
                                     rates=[0.3], participant_sd=1.0)
    k, n = k[0], n[0]
    y = np.concatenate([np.r_[np.ones(int(a)), np.zeros(int(b - a))] for a, b in zip(k[:, 0],
                                                                                       n[:, 0])])
    groups = np.repeat(np.arange(12), n[:, 0].astype(int))
    fit = sm.GEE(y, np.ones((len(y), 1)), groups=groups, family=sm.families.Binomial(),
                 cov_struct=sm.cov_struct.Independence()).fit()
    ours = intervals.cluster_robust(k, n, confidence=0.95)
    rate = ours["rate"][0]
    assert 1 / (1 + np.exp(-fit.params[0])) == pytest.approx(rate)
    from scipy import special, stats
    tq = stats.t.ppf(0.975, 11)
    se_ours = (special.logit(ours["high"][0]) - special.logit(rate)) / tq
    assert se_ours ** 2 * 11 / 12 == pytest.approx(fit.cov_params()[0, 0], rel=1e-6)


def test_all_or_nothing_rates_get_the_per_participant_wilson_interval():
    from gradreg_study.analysis import wilson_interval

    k = np.array([[0.0, 4.0]] * 5)
    res = intervals.cluster_robust(k, np.full_like(k, 4.0))
    assert (res["low"][0], res["high"][0]) == pytest.approx(wilson_interval(0, 5))
    assert (res["low"][1], res["high"][1]) == pytest.approx(wilson_interval(5, 5))
