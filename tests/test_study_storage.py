"""The SQLite store: one row per answer, idempotent retries, refusals, export, study checks."""

import csv
import io
import sqlite3

import pytest

from gradreg_study import design, simulation, stimuli, storage
from gradreg_study.storage import AnswerStatus, Store

PROTOCOL = design.Protocol(trials=10, attention_share=0.1)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return simulation.toy_study(tmp_path_factory.mktemp("study") / "toy", n_items=20)


@pytest.fixture
def store(study, tmp_path):
    return Store.open(tmp_path / "answers.sqlite3", study, PROTOCOL)


def _count(store, table="responses"):
    with sqlite3.connect(store.path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_schema_wal_and_stimuli(store, study):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"participants", "stimuli", "assignments", "responses", "meta"} <= tables
    # every stimulus, and each clean image once more as a practice stimulus (own public id)
    assert len(study.stimuli) == 20 * 5 + 10
    assert _count(store, "stimuli") == len(study.stimuli) + len(study.attention) == 120
    public = store.stimuli()
    assert len(set(public)) == len(public)
    assert all(len(k) == 16 for k in public)


def test_answers_are_stored_once_and_conflicts_refused(store, study):
    plan = design.session_plan(study, PROTOCOL)
    pid = store.register(plan)
    state = store.state(pid)
    assert state.n_trials == 11 and state.n_answered == 0 and state.next_position == 0
    first = state.next_public_id
    status, state = store.answer(pid, first, 3, 1200, user_agent="UA")
    assert status is AnswerStatus.STORED and state.n_answered == 1
    status, _ = store.answer(pid, first, 3, 999)  # a retry of the same answer
    assert status is AnswerStatus.DUPLICATE
    status, _ = store.answer(pid, first, 4, 999)  # a different answer to the same trial
    assert status is AnswerStatus.CONFLICT
    assert _count(store) == 1
    (row,) = store.rows()
    assert (row["choice"], row["response_ms"], row["user_agent"]) == (3, 1200, "UA")
    assert row["stimulus_id"] == {v["public_id"]: v for v in store.stimuli().values()}[
        first]["stimulus_id"]


def test_unknown_and_unassigned_change_nothing(store, study):
    plan = design.session_plan(study, PROTOCOL)
    a, b = store.register(plan), store.register(plan)
    theirs = store.state(b).next_public_id
    mine = {store.state(a).next_public_id}
    assert store.answer("x" * 22, theirs, 1, 10)[0] is AnswerStatus.UNKNOWN_PARTICIPANT
    not_mine = next(p for p in store.stimuli() if p not in _assigned(store, a))
    assert store.answer(a, not_mine, 1, 10)[0] is AnswerStatus.NOT_ASSIGNED
    assert store.answer(a, "'; DROP TABLE responses; --", 1, 10)[0] is AnswerStatus.NOT_ASSIGNED
    assert mine and _count(store) == 0
    for bad in ({"choice": 10}, {"choice": -2}, {"choice": True}, {"choice": 1.0},
                {"response_ms": -1}, {"response_ms": 3_600_001}, {"response_ms": "5"}):
        kwargs = {"choice": 1, "response_ms": 10, **bad}
        with pytest.raises(ValueError, match="choice must be|response_ms must be"):
            store.answer(a, store.state(a).next_public_id, **kwargs)
    assert _count(store) == 0


def _assigned(store, pid):
    with sqlite3.connect(store.path) as conn:
        return {r[0] for r in conn.execute(
            "SELECT s.public_id FROM assignments a JOIN stimuli s USING (stimulus_id) "
            "WHERE a.participant_id = ?", (pid,))}


def test_completion_and_summary(store, study):
    pid = store.register(design.session_plan(study, PROTOCOL))
    truth = store.stimuli()
    state = store.state(pid)
    while not state.done:
        s = truth[state.next_public_id]
        choice = s["target"] if s["kind"] == "adversarial" else s["original_label"]
        _, state = store.answer(pid, state.next_public_id, choice, 100)
    summary = store.summary()
    assert summary["participants_started"] == summary["participants_completed"] == 1
    per = {c["condition"]: c for c in summary["conditions"]}
    assert all(per[c]["answers"] == per[c]["target"] == 2 for c in study.conditions)
    assert per["attention"]["answers"] == per["attention"]["original"] == 1
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT completed FROM participants").fetchone()[0]


def test_export_csv_is_atomic_and_complete(store, study, tmp_path, monkeypatch):
    pid = store.register(design.session_plan(study, PROTOCOL))
    store.answer(pid, store.state(pid).next_public_id, storage.CANT_TELL, 50)
    out = store.export_csv(tmp_path / "out" / "answers.csv")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(storage.EXPORT_FIELDS) and rows[0]["choice"] == "-1"
    out.write_text("previous export\n")

    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Store, "rows", broken)
    with pytest.raises(RuntimeError):
        store.export_csv(out)
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["answers.csv"]


def test_a_database_belongs_to_one_study_and_protocol(study, tmp_path):
    path = tmp_path / "db.sqlite3"
    Store.open(path, study, PROTOCOL)
    Store.open(path, study, PROTOCOL)  # reopening is fine
    with pytest.raises(storage.StoreMismatchError, match="protocol"):
        Store.open(path, study, design.Protocol(trials=15))
    with pytest.raises(storage.StoreMismatchError, match="simulated"):
        Store.open(path, study, PROTOCOL, simulated=True)
    other = simulation.toy_study(tmp_path / "other", n_items=20, seed=1)
    with pytest.raises(storage.StoreMismatchError, match="study"):
        Store.open(path, other, PROTOCOL)
    with pytest.raises(ValueError, match="synchronous must be one of"):
        Store(path, synchronous="OFF")


def test_participant_ids_are_random_and_unlinkable(store, study):
    plan = design.session_plan(study, PROTOCOL)
    ids = [store.register(plan) for _ in range(5)]
    assert len(set(ids)) == 5
    assert all(len(i) == 22 and i.replace("-", "").replace("_", "").isalnum() for i in ids)
    with sqlite3.connect(store.path) as conn:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(participants)")}
    # no personal data: ids, times, the Latin-square slot, platform ids and display sizes
    assert cols == {"participant_id", "participant_index", "slot", "created", "completed",
                    "last_seen", "platform", "platform_pid", "platform_study_id",
                    "platform_session_id", "screen_w", "screen_h", "viewport_w", "viewport_h"}


def test_study_folder_is_verified(study, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study.root, copy)
    assert stimuli.load_study(copy).fingerprint == study.fingerprint
    victim = copy / study.stimuli[0]["file"]
    victim.write_bytes(victim.read_bytes()[:-3])
    with pytest.raises(stimuli.StudyError, match="sha256 mismatch"):
        stimuli.load_study(copy)
    victim.unlink()
    with pytest.raises(stimuli.StudyError, match="is missing"):
        stimuli.load_study(copy)
    with pytest.raises(FileNotFoundError, match="not a study folder"):
        stimuli.load_study(tmp_path)


@pytest.mark.parametrize("agent", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                   "\tcmd"])
def test_export_csv_neutralises_formula_cells(store, study, agent):
    # a participant-controlled text cell must not reach a spreadsheet as a formula
    pid = store.register(design.session_plan(study, PROTOCOL))
    store.answer(pid, store.state(pid).next_public_id, 2, 700, user_agent=agent)
    (row,) = csv.DictReader(io.StringIO(store.csv_text(), newline=""))
    assert row["user_agent"] == "'" + agent
    assert row["response_ms"] == "700"  # numbers are left as they are
