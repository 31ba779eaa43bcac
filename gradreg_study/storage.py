"""The study's answers in SQLite (``sqlite3``): participants, stimuli, assignments, responses.

The database runs in WAL mode with ``synchronous=FULL`` (by default); every write (a new
participant with their whole assignment, or one answer) is one ``BEGIN IMMEDIATE`` transaction,
so an answer the server acknowledged survives a crash of the server process (and, with FULL, of
the machine). ``responses`` has the primary key ``(participant_id, position)``: a retried answer
is stored once (the same choice again is a duplicate, a different one a conflict). Participant
ids are random (``secrets.token_urlsafe``); no personal data is stored, only the browser's
user-agent string with each answer. Each thread has its own connection, so the store is safe to
share between server threads.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import enum
import io
import json
import pathlib
import secrets
import sqlite3
import threading
from typing import Callable, Iterator

from gradreg_study.design import Protocol

SCHEMA_VERSION = "1"
CANT_TELL = -1
"""The stored ``choice`` of a "can't tell" answer (classes are 0 .. K-1)."""
MAX_RESPONSE_MS = 3_600_000
USER_AGENT_CHARS = 512
SYNCHRONOUS = ("FULL", "NORMAL")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stimuli (
    stimulus_id TEXT PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('adversarial', 'attention')),
    condition TEXT,
    item_id TEXT,
    original_label INTEGER NOT NULL,
    target INTEGER,
    file TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    participant_index INTEGER NOT NULL UNIQUE,
    created TEXT NOT NULL,
    completed TEXT
);
CREATE TABLE IF NOT EXISTS assignments (
    participant_id TEXT NOT NULL REFERENCES participants (participant_id),
    position INTEGER NOT NULL,
    stimulus_id TEXT NOT NULL REFERENCES stimuli (stimulus_id),
    PRIMARY KEY (participant_id, position),
    UNIQUE (participant_id, stimulus_id)
);
CREATE TABLE IF NOT EXISTS responses (
    participant_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    stimulus_id TEXT NOT NULL REFERENCES stimuli (stimulus_id),
    choice INTEGER NOT NULL,
    response_ms INTEGER NOT NULL CHECK (response_ms >= 0),
    answered TEXT NOT NULL,
    user_agent TEXT,
    PRIMARY KEY (participant_id, position),
    FOREIGN KEY (participant_id, position) REFERENCES assignments (participant_id, position)
);
"""

EXPORT_FIELDS = ("participant_id", "participant_index", "position", "stimulus_id", "kind",
                 "condition", "item_id", "original_label", "target", "choice", "response_ms",
                 "answered", "user_agent")


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP CSV injection)."""


def neutralise_cell(value):
    """A text cell starting with a formula character gets a leading ``'``; other values as they are.

    Participant-controlled text (e.g. the user agent) must not run as a spreadsheet formula.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class StoreMismatchError(ValueError):
    """The database belongs to another study, protocol or mode (real vs simulated)."""


class AnswerStatus(enum.Enum):
    """Outcome of :meth:`Store.answer`."""

    STORED = "stored"
    DUPLICATE = "duplicate"          # the same answer again: stored once, not an error
    CONFLICT = "conflict"            # a different answer to an answered trial: refused
    UNKNOWN_PARTICIPANT = "unknown_participant"
    NOT_ASSIGNED = "not_assigned"    # the stimulus is not in this participant's assignment


@dataclasses.dataclass(frozen=True)
class ParticipantState:
    """Where a participant stands.

    Attributes:
        participant_id: the random id.
        n_trials: trials in the assignment.
        n_answered: trials answered.
        next_position: position of the first unanswered trial (None when done).
        next_public_id: that trial's stimulus, by its public id (None when done).
    """

    participant_id: str
    n_trials: int
    n_answered: int
    next_position: int | None
    next_public_id: str | None

    @property
    def done(self) -> bool:
        return self.next_position is None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """The answers of one study in one SQLite file.

    Args:
        path: the database file (created by :meth:`open`).
        timeout: seconds a writer waits for the lock before failing.
        synchronous: ``"FULL"`` (default: every answer is fsynced, it survives a power loss)
            or ``"NORMAL"`` (survives a crash of the server process but not of the machine;
            much faster on disks with slow fsync).
    """

    def __init__(self, path, *, timeout: float = 30.0, synchronous: str = "FULL"):
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, received "
                             f"{synchronous!r}.")
        self.path = pathlib.Path(path)
        self.timeout = timeout
        self.synchronous = synchronous
        self._n_classes = None
        self._local = threading.local()
        self._write_lock = threading.Lock()

    # -- connections -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opened once per thread: closing the last connection of a
        WAL database checkpoints it, which would cost a few ms per request)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")  # one of SYNCHRONOUS
            self._local.conn = conn
        yield conn

    def close(self) -> None:
        """Closes this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; this process's writers queue on a lock (SQLite's own lock,
        with ``timeout``, still orders writers of other processes)."""
        with self._write_lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- set-up ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path, study, protocol: Protocol, *, simulated: bool = False,
             synchronous: str = "FULL") -> "Store":
        """Creates the database for ``study`` or opens it, checking it belongs to it.

        Args:
            path: the database file.
            study: the :class:`~gradreg_study.stimuli.Study`.
            protocol: the session protocol; fixed for the life of the database.
            simulated: the answers come from simulated participants (recorded, and checked
                on reopening so simulated and real answers never mix).
            synchronous: as in :class:`Store`.

        Raises:
            StoreMismatchError: an existing database of another study, protocol or mode.
            sqlite3.DatabaseError: the file is not a SQLite database.
        """
        store = cls(path, synchronous=synchronous)
        store.path.parent.mkdir(parents=True, exist_ok=True)
        wanted = {"schema": SCHEMA_VERSION, "study": study.fingerprint,
                  "protocol": json.dumps(protocol.as_dict(), sort_keys=True),
                  "conditions": json.dumps(list(study.conditions)),
                  "class_names": json.dumps(list(study.class_names)),
                  "simulated": json.dumps(bool(simulated))}
        with store._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        with store._transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            have = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if have:
                diff = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
                if diff:
                    text = "; ".join(f"{k}: database has {a}, requested {b}"
                                     for k, (a, b) in diff.items())
                    raise StoreMismatchError(f"{store.path} was made for another study or "
                                             f"protocol ({text}). Use another --db.")
            else:
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [*wanted.items(), ("created", _now())])
                conn.executemany(
                    "INSERT INTO stimuli (stimulus_id, public_id, kind, condition, item_id, "
                    "original_label, target, file) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(s["stimulus_id"], secrets.token_hex(8), s["kind"], s["condition"],
                      s["item_id"], s["original_label"], s["target"], s["file"])
                     for s in study.stimuli])
        return store

    def meta(self) -> dict:
        """The ``meta`` table: study fingerprint, protocol, conditions, class names, mode."""
        with self._connect() as conn:
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def protocol(self) -> Protocol:
        return Protocol(**json.loads(self.meta()["protocol"]))

    # -- participants ----------------------------------------------------------------------
    def register(self, plan: Callable[[int], list[str]]) -> str:
        """Adds a participant (after consent) with the assignment ``plan(participant_index)``.

        Returns:
            The new random participant id.
        """
        pid = secrets.token_urlsafe(16)
        with self._transaction() as conn:
            index = conn.execute("SELECT COALESCE(MAX(participant_index), -1) + 1 "
                                 "FROM participants").fetchone()[0]
            stimuli = plan(index)
            conn.execute("INSERT INTO participants (participant_id, participant_index, created) "
                         "VALUES (?, ?, ?)", (pid, index, _now()))
            conn.executemany("INSERT INTO assignments (participant_id, position, stimulus_id) "
                             "VALUES (?, ?, ?)", [(pid, i, s) for i, s in enumerate(stimuli)])
        return pid

    @staticmethod
    def _state(conn, participant_id: str) -> ParticipantState | None:
        rows = conn.execute(
            "SELECT a.position, s.public_id, r.position IS NOT NULL AS answered "
            "FROM assignments a JOIN stimuli s ON s.stimulus_id = a.stimulus_id "
            "LEFT JOIN responses r ON r.participant_id = a.participant_id "
            "AND r.position = a.position WHERE a.participant_id = ? ORDER BY a.position",
            (participant_id,)).fetchall()
        if not rows:
            return None
        todo = [r for r in rows if not r["answered"]]
        return ParticipantState(participant_id, len(rows), len(rows) - len(todo),
                                todo[0]["position"] if todo else None,
                                todo[0]["public_id"] if todo else None)

    def state(self, participant_id: str) -> ParticipantState | None:
        """The participant's progress, or None for an unknown id."""
        with self._connect() as conn:
            return self._state(conn, participant_id)

    # -- answers ---------------------------------------------------------------------------
    def answer(self, participant_id: str, public_id: str, choice: int, response_ms: int, *,
               user_agent: str = "") -> tuple[AnswerStatus, ParticipantState | None]:
        """Stores one answer in its own transaction.

        Args:
            participant_id: the participant's id.
            public_id: the stimulus' public id (as in its image URL).
            choice: class index, or :data:`CANT_TELL`.
            response_ms: time from the image appearing to the answer.
            user_agent: the browser's user-agent string (truncated).

        Returns:
            ``(status, state after the answer)``; nothing changes unless ``STORED``.

        Raises:
            ValueError: ``choice`` or ``response_ms`` out of range.
        """
        if self._n_classes is None:
            self._n_classes = len(json.loads(self.meta()["class_names"]))
        n_classes = self._n_classes
        if isinstance(choice, bool) or not isinstance(choice, int) or \
                not (choice == CANT_TELL or 0 <= choice < n_classes):
            raise ValueError(f"choice must be a class index in [0, {n_classes}) or {CANT_TELL} "
                             f"(can't tell), received {choice!r}.")
        if isinstance(response_ms, bool) or not isinstance(response_ms, int) or \
                not 0 <= response_ms <= MAX_RESPONSE_MS:
            raise ValueError(f"response_ms must be an integer in [0, {MAX_RESPONSE_MS}], "
                             f"received {response_ms!r}.")
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM participants WHERE participant_id = ?",
                            (participant_id,)).fetchone() is None:
                return AnswerStatus.UNKNOWN_PARTICIPANT, None
            trial = conn.execute(
                "SELECT a.position, a.stimulus_id FROM assignments a JOIN stimuli s "
                "ON s.stimulus_id = a.stimulus_id WHERE a.participant_id = ? AND s.public_id = ?",
                (participant_id, public_id)).fetchone()
            if trial is None:
                return AnswerStatus.NOT_ASSIGNED, self._state(conn, participant_id)
            cur = conn.execute(
                "INSERT INTO responses (participant_id, position, stimulus_id, choice, "
                "response_ms, answered, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (participant_id, position) DO NOTHING",
                (participant_id, trial["position"], trial["stimulus_id"], choice, response_ms,
                 _now(), (user_agent or "")[:USER_AGENT_CHARS]))
            if cur.rowcount == 0:
                old = conn.execute("SELECT choice FROM responses WHERE participant_id = ? AND "
                                   "position = ?", (participant_id, trial["position"])).fetchone()
                status = (AnswerStatus.DUPLICATE if old["choice"] == choice
                          else AnswerStatus.CONFLICT)
                return status, self._state(conn, participant_id)
            state = self._state(conn, participant_id)
            if state.done:
                conn.execute("UPDATE participants SET completed = ? WHERE participant_id = ?",
                             (_now(), participant_id))
            return AnswerStatus.STORED, state

    # -- reading ---------------------------------------------------------------------------
    def stimulus_file(self, public_id: str) -> str | None:
        """The study-relative image file of a public stimulus id (None if unknown)."""
        with self._connect() as conn:
            row = conn.execute("SELECT file FROM stimuli WHERE public_id = ?",
                               (public_id,)).fetchone()
        return row["file"] if row else None

    def stimuli(self) -> dict[str, dict]:
        """``{public_id: stimulus row}`` (kind, condition, item, original label, target)."""
        with self._connect() as conn:
            return {r["public_id"]: dict(r) for r in conn.execute("SELECT * FROM stimuli")}

    def rows(self) -> list[dict]:
        """Every response joined with its stimulus and participant (:data:`EXPORT_FIELDS`)."""
        with self._connect() as conn:
            cur = conn.execute(
                "SELECT r.participant_id, p.participant_index, r.position, r.stimulus_id, s.kind, "
                "s.condition, s.item_id, s.original_label, s.target, r.choice, r.response_ms, "
                "r.answered, r.user_agent FROM responses r "
                "JOIN participants p ON p.participant_id = r.participant_id "
                "JOIN stimuli s ON s.stimulus_id = r.stimulus_id "
                "ORDER BY p.participant_index, r.position")
            return [dict(r) for r in cur]

    def summary(self) -> dict:
        """Live counts for the admin page: participants, and answers per condition split into
        target / original label / other (can't tell counted under other)."""
        with self._connect() as conn:
            started, completed = conn.execute(
                "SELECT COUNT(*), COUNT(completed) FROM participants").fetchone()
            per = conn.execute(
                "SELECT COALESCE(s.condition, 'attention') AS condition, COUNT(*) AS answers, "
                "SUM(r.choice = s.target) AS target, SUM(r.choice = s.original_label) AS original, "
                "SUM(r.choice = ?) AS cant_tell FROM responses r "
                "JOIN stimuli s ON s.stimulus_id = r.stimulus_id GROUP BY 1 ORDER BY 1",
                (CANT_TELL,)).fetchall()
        meta = self.meta()
        order = json.loads(meta["conditions"]) + ["attention"]
        counts = {r["condition"]: {k: int(r[k] or 0) for k in
                                   ("answers", "target", "original", "cant_tell")} for r in per}
        return {"participants_started": started, "participants_completed": completed,
                "simulated": json.loads(meta["simulated"]),
                "conditions": [{"condition": c, **counts.get(
                    c, {"answers": 0, "target": 0, "original": 0, "cant_tell": 0})}
                    for c in order]}

    def csv_text(self) -> str:
        """:meth:`rows` as CSV text (header :data:`EXPORT_FIELDS`)."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows({k: neutralise_cell(v) for k, v in row.items()} for row in self.rows())
        return buf.getvalue()

    def export_csv(self, path) -> pathlib.Path:
        """Writes :meth:`csv_text` to ``path`` atomically (temporary file + rename)."""
        from gradreg_tf import cache  # the one atomic writer (TensorFlow: only when exporting)

        text = self.csv_text()

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                f.write(text)

        return cache.atomic_write(path, write)
