"""The study's statistics: intervals and corrections against known values, a known effect
recovered through the HTTP API, and the primary test's rejection rate under no effect."""

import math

import numpy as np
import pytest

from gradreg_study import analysis, design, simulation
from gradreg_study.storage import CANT_TELL

CONDITIONS = ("normal", "distilled", "advtrain", "insensitive", "doubleback")


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 95% Wilson score intervals
    assert analysis.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert analysis.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert analysis.wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert all(math.isnan(v) for v in analysis.wilson_interval(0, 0))
    with pytest.raises(ValueError, match="need 0 <= k <= n"):
        analysis.wilson_interval(11, 10)


def test_holm_adjustment():
    adj = analysis.holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    np.testing.assert_allclose(adj[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adj[4])
    assert analysis.holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_paired_test_exact_permutation_and_bootstrap():
    res = analysis.paired_test(np.ones(5), np.zeros(5), n_permutations=9999, n_bootstrap=500)
    assert res["permutation_exact"]
    assert res["p_permutation"] == pytest.approx(2 / 32)  # only all-positive and all-negative
    assert (res["ci_low"], res["ci_high"]) == (1.0, 1.0)
    assert res["mean_difference"] == 1.0
    same = analysis.paired_test(np.full(6, 0.3), np.full(6, 0.3))
    assert same["p_permutation"] == 1.0
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        analysis.paired_test(np.ones(3), np.ones(4))


EXPORT = {"completed": 1, "started_at": "2026-01-01T00:00:00Z",
          "completed_at": "2026-01-01T00:10:00Z", "platform": "generic", "platform_pid": "",
          "mode": "human", "server_rt_ms": 1500, "too_fast": 0, "practice": 0,
          "viewport_w": 1280, "viewport_h": 800}


def _row(pid, kind, cond, label, target, choice, item="i", **export):
    return {"participant_id": pid, "kind": kind, "condition": cond, "item_id": item,
            "original_label": label, "target": target, "choice": choice, **EXPORT, **export}


def test_shares_tests_and_exclusions_on_known_rows():
    rows = []
    for p in range(4):
        pid = f"p{p}"
        rows += [_row(pid, "adversarial", "doubleback", 1, 7, 7),
                 _row(pid, "adversarial", "doubleback", 2, 8, 8 if p < 2 else 2),
                 _row(pid, "adversarial", "normal", 1, 7, 1),
                 _row(pid, "adversarial", "normal", 3, 5, CANT_TELL if p == 0 else 9),
                 _row(pid, "attention", None, 4, None, 4)]
    rows += [_row("bad", "adversarial", "doubleback", 1, 7, 7),
             _row("bad", "adversarial", "normal", 1, 7, 7),
             _row("bad", "attention", None, 4, None, 0),
             _row("bad", "attention", None, 5, None, 5)]
    res = analysis.analyze(rows, ("normal", "doubleback"), min_attention=0.75,
                           n_permutations=999, n_bootstrap=999, mixed=False)
    assert res.excluded == ["bad"] and res.n_participants == 4 and res.n_answers == 16
    normal, dback = res.shares
    assert (dback["n"], dback["n_target"], dback["n_original"], dback["n_other"]) == (8, 6, 2, 0)
    assert (normal["n"], normal["n_target"], normal["n_original"], normal["n_other"],
            normal["n_cant_tell"]) == (8, 0, 4, 4, 1)
    assert dback["share_target"] == 0.75
    assert (dback["wilson_target_low"], dback["wilson_target_high"]) == pytest.approx(
        analysis.wilson_interval(6, 8))
    # participant-clustered interval: per participant 2/2, 2/2, 1/2, 1/2 -> wider than Wilson's
    assert dback["target_low"] < 0.75 < dback["target_high"]
    # every participant: doubleback 1.0 or 0.5 target vs normal 0.0
    assert res.primary["mean_difference"] == pytest.approx(0.75)
    assert res.primary["n_participants"] == 4 and res.primary["permutation_exact"]
    assert res.primary["p_permutation"] == pytest.approx(2 / 16)
    (pair,) = res.tests["pairwise"]
    assert pair["p_holm"] == pytest.approx(pair["p"]) and pair["p"] < 0.01
    assert res.tests["chi2"]["dof"] == 2
    text = analysis.markdown(res)
    assert "| doubleback | 8 | – | 75.0%" in text and "1 excluded" in text
    assert "attention: 1" in text and "5 registered" in text and "4 analysed" in text
    fig = analysis.plot_shares(res, caption="test")
    assert len(fig.axes[0].patches) == 3 * 2


def test_bad_rows_and_options_are_refused():
    good = [_row("p", "adversarial", "normal", 1, 2, 2)]
    with pytest.raises(ValueError, match=r"lacks the columns \['choice'\]"):
        analysis.analyze([{k: v for k, v in good[0].items() if k != "choice"}], CONDITIONS)
    with pytest.raises(ValueError, match="must hold integers, received 'seven'"):
        analysis.analyze([{**good[0], "choice": "seven"}], CONDITIONS)
    with pytest.raises(ValueError, match="primary must be two different conditions"):
        analysis.analyze(good, CONDITIONS, primary=("doubleback", "nope"))
    with pytest.raises(ValueError, match=r"conditions \['other'\] that are not among"):
        analysis.analyze([{**good[0], "condition": "other"}], CONDITIONS)
    with pytest.raises(ValueError, match="min_attention must be in"):
        analysis.analyze(good, CONDITIONS, min_attention=2)


def test_csv_strings_are_accepted():
    text = {k: str(v) for k, v in EXPORT.items()}
    rows = [{"participant_id": "p", "kind": "adversarial", "condition": "normal",
             "item_id": "i", "original_label": "1", "target": "2", "choice": "2", **text},
            {"participant_id": "p", "kind": "attention", "condition": "", "item_id": "",
             "original_label": "3", "target": "", "choice": "3", **text}]
    res = analysis.analyze(rows, CONDITIONS, n_permutations=99, n_bootstrap=99, mixed=False)
    assert res.shares[0]["n_target"] == 1 and res.excluded == []


def test_mixed_model_is_optional():
    rows = simulation.simulate_rows(np.random.default_rng(0), n_participants=6,
                                    trials_per_condition=4, conditions=("normal", "doubleback"),
                                    target_share={"normal": 0.2, "doubleback": 0.6})
    res = analysis.mixed_effects(rows, ("normal", "doubleback"))
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        assert res == {"fitted": False, "reason": "statsmodels (and pandas) not installed"}
    else:
        assert res["fitted"] and res["coefficients"]["doubleback"]["mean"] > 0


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return simulation.toy_study(tmp_path_factory.mktemp("study") / "toy", n_items=40)


def test_a_known_effect_is_recovered_through_the_http_api(study, tmp_path):
    pytest.importorskip("flask", reason="the study server needs the `study` extra (flask)")
    from gradreg_study import server

    protocol = design.Protocol(trials=20, attention_share=0.1)
    clock = simulation.SimulatedClock()
    app = server.create_app(study.root, db_path=tmp_path / "sim.sqlite3", protocol=protocol,
                            simulated=True, synchronous="NORMAL", clock=clock)
    store = server.context(app).store
    client = simulation.FlaskClient(app, clock=clock)
    model = simulation.ResponseModel({"doubleback": 0.45}, default_target_share=0.15,
                                     original_share=0.4)
    rng = np.random.default_rng(1)
    truth = store.stimuli()
    for _ in range(24):
        simulation.run_participant(client, model, truth, rng, n_classes=10)
    simulation.run_participant(client, model, truth, rng, n_classes=10, stop_after=5)  # leaves
    # the default, pre-registered population rule on the server's export columns
    res = analysis.analyze(store.rows(), study.conditions, n_permutations=4999,
                           n_bootstrap=4999, mixed=False, simulated=True,
                           participants=store.participants())
    assert res.simulated
    assert res.flow["registered"] == 25 and res.flow["completed"] == 24
    assert res.flow["excluded"]["not completed"] == 1 and res.flow["analysed"] == 24
    p = res.primary
    assert p["n_participants"] == 24 and p["significant"] and p["p_permutation"] < 0.01
    assert p["ci_low"] > 0 and p["ci_low"] <= 0.30 <= p["ci_high"]
    for s in res.shares:  # five intervals at 99.9% each: all cover with >= 99.5%
        low, high = analysis.wilson_interval(s["n_target"], s["n"], confidence=0.999)
        assert s["n"] == 24 * 4 and low <= model.target_for(s["condition"]) <= high, s
    assert store.summary()["simulated"] is True


def test_null_rejection_rate_is_near_nominal():
    """200 simulated studies without an effect (24 participants x 10 trials per condition):
    the primary test should reject in about alpha = 5% of them."""
    rate = simulation.rejection_rate(n_simulations=200, n_participants=24,
                                     trials_per_condition=10, control_share=0.3, alpha=0.05)
    assert 0.01 <= rate.rate <= 0.10, rate.text()
    power = simulation.rejection_rate(n_simulations=50, control_share=0.15,
                                      treatment_share=0.45)
    assert power.rate >= 0.9, power.text()
