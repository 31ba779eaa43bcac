"""The analysis population (issue 21): the pre-registered rule, the participant flow, practice
never analysed, the export columns required, dropouts, simulated data labelled SIMULATED, and
the report's response times, perturbation sizes and condition names."""

import json

import pytest

from gradreg_study import analysis, population

CONDS = ("normal", "doubleback")
EXPORT = {"completed": 1, "started_at": "2026-01-01T00:00:00Z",
          "completed_at": "2026-01-01T00:10:00Z", "platform": "prolific", "platform_pid": "x",
          "mode": "human", "server_rt_ms": 1500, "too_fast": 0, "practice": 0,
          "viewport_w": 1280, "viewport_h": 800}


def _participant(pid, *, target_db=(1, 1), target_n=(0, 0), attention=(1, 1), **export):
    """Two answers per condition and two attention checks (1 = correct)."""
    rows = []
    for i, hit in enumerate(target_db):
        rows.append({"participant_id": pid, "kind": "adversarial", "condition": "doubleback",
                     "stimulus_id": f"doubleback/i{i}", "item_id": f"i{i}", "original_label": 1,
                     "target": 7, "choice": 7 if hit else 1, "response_ms": 1400,
                     **EXPORT, **export})
    for i, hit in enumerate(target_n):
        rows.append({"participant_id": pid, "kind": "adversarial", "condition": "normal",
                     "stimulus_id": f"normal/j{i}", "item_id": f"j{i}", "original_label": 2,
                     "target": 8, "choice": 8 if hit else 2, "response_ms": 900,
                     **EXPORT, **export})
    for i, ok in enumerate(attention):
        rows.append({"participant_id": pid, "kind": "attention", "condition": None,
                     "stimulus_id": f"clean/t{i}", "item_id": None, "original_label": 4,
                     "target": None, "choice": 4 if ok else 5, "response_ms": 700,
                     **EXPORT, **export})
    return rows


def _study():
    rows = []
    for p in range(5):
        rows += _participant(f"ok{p}", target_db=(1, p % 2), target_n=(0, p % 3 == 0))
    rows += _participant("left", completed=0, target_db=(0,), target_n=())
    rows += _participant("careless", attention=(0, 0))
    rows += _participant("bot", too_fast=1, server_rt_ms=80)
    practice = _participant("ok0", practice=1, target_db=(0, 0), target_n=(1, 1))
    return rows + practice


def _run(rows, **kw):
    return analysis.analyze(rows, CONDS, n_permutations=99, n_bootstrap=99, mixed=False, **kw)


def test_rule_flow_and_practice():
    res = _run(_study())
    assert res.flow["registered"] == 8 and res.flow["completed"] == 7
    assert res.flow["excluded"] == {"not completed": 1, "attention": 1, "too fast": 1}
    assert res.flow["analysed"] == 5 == res.n_participants
    assert sorted(res.excluded) == ["bot", "careless", "left"]
    assert res.practice_dropped == 6  # practice answers never analysed
    assert res.shares[0]["n"] == res.shares[1]["n"] == 10
    text = analysis.markdown(res)
    assert "pre-registered rule" in text and "completed the study" in text
    assert "8 registered → 8 consented → 7 completed → 3 excluded" in text
    # participants registered without answering still count in the flow
    res = _run(_study(), participants=[{"participant_id": "silent", "completed": 0}])
    assert res.flow["registered"] == 9 and res.flow["excluded"]["not completed"] == 2
    # without the completion requirement the leaver is analysed
    res = _run(_study(), rule=population.PopulationRule(require_completed=False))
    assert "left" not in res.excluded and res.flow["analysed"] == 6


def test_missing_export_columns_are_an_error_not_a_default():
    rows = [{k: v for k, v in r.items() if k not in ("completed", "too_fast")}
            for r in _study()]
    with pytest.raises(ValueError, match=r"lack the export columns \['completed', 'too_fast'\]"):
        _run(rows)
    legacy = _run(rows, rule=None)  # explicit opt-out, stated in the report
    assert "no population rule" in analysis.markdown(legacy)
    with pytest.raises(ValueError, match="'practice' must be 0 or 1, received 'yes'"):
        _run([{**r, "practice": "yes"} for r in _study()])
    with pytest.raises(ValueError, match=r"PopulationRule.max_too_fast_share .* received 2"):
        population.PopulationRule(max_too_fast_share=2)


def test_dropouts_leave_the_completers_estimate_unbiased():
    res = population.dropout_bias(n_studies=400, seed=0)
    # completers: within 3 Monte Carlo standard errors of the truth
    assert abs(res["completers"] - res["truth"]) < 3 * res["completers_se"], res
    # keeping the leavers' partial answers biases the estimate upward
    assert res["all_answers"] - res["truth"] > 10 * res["all_answers_se"], res


def test_simulated_rows_are_never_labelled_human(tmp_path):
    rows = _study()
    rows[3] = {**rows[3], "mode": "simulated"}  # one simulated participant row is enough
    res = _run(rows, simulated=False)
    assert res.simulated and res.record()["simulated"] is True
    assert json.loads(json.dumps(res.record(), default=str))["simulated"] is True
    assert analysis.markdown(res).startswith("# **SIMULATED**")
    assert all(r["simulated"] == 1 for r in analysis.summary_rows(res))
    fig = analysis.plot_shares(res)
    assert "SIMULATED" in fig.axes[0].get_title()
    assert any(t.get_text() == "SIMULATED" for t in fig.texts)
    human = _run(_study())
    assert not human.simulated and "SIMULATED" not in analysis.markdown(human)
    assert "SIMULATED" not in analysis.plot_shares(human).axes[0].get_title()
    assert _run(_study(), simulated=True).simulated  # the source's word also counts
    with pytest.raises(ValueError, match=r"'mode' must be one of \['human', 'simulated'\]"):
        _run([{**r, "mode": "bot"} for r in _study()])


def test_report_response_times_perturbation_and_names():
    stimuli = ([{"stimulus_id": f"doubleback/i{i}", "condition": "doubleback",
                 "item_id": f"i{i}", "linf": 1.0} for i in range(2)]
               + [{"stimulus_id": f"normal/j{i}", "condition": "normal", "item_id": f"j{i}",
                   "linf": 0.25 + 0.1 * i} for i in range(2)]
               # a study's metadata also lists its clean images, which have no perturbation
               + [{"stimulus_id": "clean/test7", "kind": "attention", "condition": None}])
    res = _run(_study(), stimuli=stimuli)
    linf = {c["condition"]: c["median"] for c in res.perturbation["conditions"]}
    assert linf == pytest.approx({"doubleback": 1.0, "normal": 0.30})
    times = {t["condition"]: t for t in res.response_times}
    assert times["normal"]["response_ms"]["median"] == 900
    assert times["doubleback"]["server_rt_ms"]["median"] == 1500
    assert times["attention"]["response_ms"]["n"] == 10
    names = {"normal": "Normal", "doubleback": "Grad Reg (y)"}
    text = analysis.markdown(res, label=names.get)
    assert "| Grad Reg (y) | 10 | 1.00 |" in text and "| Normal | 10 | 0.30 |" in text
    assert "Grad Reg (y) − Normal" in text and "doubleback" not in text.replace(
        "doubleback/", "")
    assert "| Normal | 1.50 s [1.50, 1.50] | 0.90 s [0.90, 0.90] |" in text
    assert "Viewport (CSS px, 5 participants): median 1280 x 800" in text
    small = _run(_study() + _participant("phone", viewport_w=375, viewport_h=667))
    assert small.viewports["min_w"] == 375 and small.viewports["median_w"] == 1280
    no_linf = _run(_study(), stimuli=[{"stimulus_id": "x"}])
    assert not no_linf.perturbation["reported"] and "records no 'linf'" in \
        no_linf.perturbation["reason"]


def test_analyze_cli_marks_a_simulated_csv_simulated(tmp_path):
    """``analyze --csv`` on rows whose mode says simulated: every output says SIMULATED and the
    JSON can never say ``"simulated": false`` (the CSV carries no database meta)."""
    import csv
    import importlib
    import pathlib

    import numpy as np

    from gradreg_study import simulation

    pytest.importorskip("flask", reason="the study CLI needs the `study` extra")
    study = simulation.toy_study(tmp_path / "toy", n_items=10)
    rng = np.random.default_rng(0)
    rows = []
    for p in range(6):
        for s in study.stimuli + study.attention:
            hit = rng.random() < (0.5 if s["condition"] == "doubleback" else 0.2)
            rows.append({**EXPORT, "participant_id": f"s{p}",
                         "mode": "simulated" if p == 0 else "human",
                         "stimulus_id": s["stimulus_id"], "kind": s["kind"],
                         "condition": s["condition"] or "", "item_id": s["item_id"] or "",
                         "original_label": s["original_label"],
                         "target": "" if s["target"] is None else s["target"],
                         "choice": s["target"] if hit and s["target"] is not None
                         else s["original_label"], "response_ms": 1200})
    path = tmp_path / "answers.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    repo = pathlib.Path(__file__).resolve().parents[1]
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(repo / "experiments"))
    try:
        cli = importlib.import_module("human_study")
        out = tmp_path / "out"
        cli.main(["analyze", str(study.root), "--csv", str(path), "--out", str(out),
                  "--n-permutations", "99", "--n-bootstrap", "99", "--no-mixed"])
    finally:
        mp.undo()
    assert json.loads((out / "answers_analysis.json").read_text())["simulated"] is True
    assert "SIMULATED" in (out / "answers_analysis.md").read_text().splitlines()[0]
    with open(out / "answers_analysis.csv", newline="") as f:
        assert {r["simulated"] for r in csv.DictReader(f)} == {"1"}
