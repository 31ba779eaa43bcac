"""The study's answers in SQLite (``sqlite3``): participants, stimuli, assignments, responses.

The database runs in WAL mode with ``synchronous=FULL`` (by default); every write (a new
participant with their whole assignment, or one answer) is one ``BEGIN IMMEDIATE`` transaction,
so an answer the server acknowledged survives a crash of the server process (and, with FULL, of
the machine). ``responses`` has the primary key ``(participant_id, position)``: a retried answer
is stored once (the same choice again is a duplicate, a different one a conflict), and only the
next unanswered trial is accepted (answers come in the assigned order). Participant ids are
random (``secrets.token_urlsafe``); no personal data is stored: the browser's user-agent string,
screen and window sizes, and a recruitment platform's ids (unique per platform). Each thread has
its own connection, so the store is safe to share between server threads.

Timing: the server notes when it first hands out each trial; an answer's ``server_rt_ms`` is the
time since then, and ``too_fast`` flags an answer whose server or browser time is below
``min_response_ms``. Balance: a participant who has not answered for ``abandon_after_s`` seconds
and has not completed counts as having left; the next newcomer takes over their Latin-square
row (``slot``), so that completers stay balanced over items and conditions.
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
import time
from typing import Callable, Iterator

from gradreg_study.design import PRACTICE_PREFIX, Protocol

SCHEMA_VERSION = "2"
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
    kind TEXT NOT NULL CHECK (kind IN ('adversarial', 'attention', 'practice')),
    condition TEXT,
    item_id TEXT,
    original_label INTEGER NOT NULL,
    target INTEGER,
    file TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    participant_index INTEGER NOT NULL UNIQUE,
    slot INTEGER NOT NULL,
    created TEXT NOT NULL,
    completed TEXT,
    last_seen REAL NOT NULL,
    platform TEXT NOT NULL,
    platform_pid TEXT,
    platform_study_id TEXT,
    platform_session_id TEXT,
    screen_w INTEGER,
    screen_h INTEGER,
    viewport_w INTEGER,
    viewport_h INTEGER,
    UNIQUE (platform, platform_pid)
);
CREATE TABLE IF NOT EXISTS assignments (
    participant_id TEXT NOT NULL REFERENCES participants (participant_id),
    position INTEGER NOT NULL,
    stimulus_id TEXT NOT NULL REFERENCES stimuli (stimulus_id),
    issued REAL,
    PRIMARY KEY (participant_id, position),
    UNIQUE (participant_id, stimulus_id)
);
CREATE TABLE IF NOT EXISTS responses (
    participant_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    stimulus_id TEXT NOT NULL REFERENCES stimuli (stimulus_id),
    choice INTEGER NOT NULL,
    response_ms INTEGER NOT NULL CHECK (response_ms >= 0),
    server_rt_ms INTEGER,
    too_fast INTEGER NOT NULL,
    viewport_w INTEGER,
    viewport_h INTEGER,
    answered TEXT NOT NULL,
    user_agent TEXT,
    PRIMARY KEY (participant_id, position),
    FOREIGN KEY (participant_id, position) REFERENCES assignments (participant_id, position)
);
"""

EXPORT_FIELDS = ("participant_id", "participant_index", "slot", "mode", "platform",
                 "platform_pid", "platform_study_id", "platform_session_id", "started_at",
                 "completed", "completed_at", "screen_w", "screen_h", "position", "practice",
                 "stimulus_id", "kind", "condition", "item_id", "original_label", "target",
                 "choice", "response_ms", "server_rt_ms", "too_fast", "viewport_w",
                 "viewport_h", "answered", "user_agent")
MAX_PIXELS = 100_000
"""Largest screen or window size accepted (CSS pixels)."""


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


class AlreadyRegistered(ValueError):
    """A recruitment platform id that already has a participant (``participant_id``)."""

    def __init__(self, participant_id: str, completed: bool):
        super().__init__("this platform id already took part")
        self.participant_id = participant_id
        self.completed = completed


class AnswerStatus(enum.Enum):
    """Outcome of :meth:`Store.answer`."""

    STORED = "stored"
    DUPLICATE = "duplicate"          # the same answer again: stored once, not an error
    CONFLICT = "conflict"            # a different answer to an answered trial: refused
    OUT_OF_ORDER = "out_of_order"    # not the next unanswered trial: refused
    UNKNOWN_PARTICIPANT = "unknown_participant"
    NOT_ASSIGNED = "not_assigned"    # the stimulus is not in this participant's assignment


@dataclasses.dataclass(frozen=True)
class Enrolment:
    """Who registers (:meth:`Store.register`): platform ids and display sizes, all optional.

    Attributes:
        platform: ``"none"``, ``"prolific"``, ``"mturk"`` or ``"pid"``.
        platform_pid: the platform's participant id (unique per platform).
        platform_study_id: the platform's study (Prolific) or HIT (MTurk) id.
        platform_session_id: the platform's session (Prolific) or assignment (MTurk) id.
        screen: ``(width, height)`` of the screen in CSS pixels.
        viewport: ``(width, height)`` of the browser window.
    """

    platform: str = "none"
    platform_pid: str | None = None
    platform_study_id: str | None = None
    platform_session_id: str | None = None
    screen: tuple[int, int] | None = None
    viewport: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class ParticipantState:
    """Where a participant stands.

    Attributes:
        participant_id: the random id.
        n_trials: trials in the assignment.
        n_answered: trials answered.
        next_position: position of the first unanswered trial (None when done).
        next_public_id: that trial's stimulus, by its public id (None when done).
        n_practice: practice trials at the start of the assignment.
        next_issued: when the server first handed out the next trial (epoch seconds).
    """

    participant_id: str
    n_trials: int
    n_answered: int
    next_position: int | None
    next_public_id: str | None
    n_practice: int = 0
    next_issued: float | None = None

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

    def __init__(self, path, *, timeout: float = 30.0, synchronous: str = "FULL",
                 min_response_ms: int = 300, abandon_after_s: float = 3600.0,
                 clock: Callable[[], float] = time.time):
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, received "
                             f"{synchronous!r}.")
        self.path = pathlib.Path(path)
        self.timeout = timeout
        self.synchronous = synchronous
        self.min_response_ms = int(min_response_ms)
        self.abandon_after_s = float(abandon_after_s)
        self.clock = clock
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
             synchronous: str = "FULL", **options) -> "Store":
        """Creates the database for ``study`` or opens it, checking it belongs to it.

        Args:
            path: the database file.
            study: the :class:`~gradreg_study.stimuli.Study`.
            protocol: the session protocol; fixed for the life of the database.
            simulated: the answers come from simulated participants (recorded, and checked
                on reopening so simulated and real answers never mix).
            synchronous: as in :class:`Store`.
            **options: ``min_response_ms``, ``abandon_after_s``, ``clock`` of :class:`Store`.

        Raises:
            StoreMismatchError: an existing database of another study, protocol or mode.
            sqlite3.DatabaseError: the file is not a SQLite database.
        """
        store = cls(path, synchronous=synchronous, **options)
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
                conn.executemany(
                    "INSERT INTO stimuli (stimulus_id, public_id, kind, condition, item_id, "
                    "original_label, target, file) VALUES (?, ?, 'practice', NULL, NULL, ?, "
                    "NULL, ?)",
                    [(PRACTICE_PREFIX + s["stimulus_id"], secrets.token_hex(8),
                      s["original_label"], s["file"]) for s in study.attention])
        return store

    def meta(self) -> dict:
        """The ``meta`` table: study fingerprint, protocol, conditions, class names, mode."""
        with self._connect() as conn:
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def protocol(self) -> Protocol:
        return Protocol(**json.loads(self.meta()["protocol"]))

    # -- participants ----------------------------------------------------------------------
    def register(self, plan: Callable[[int], list[str]],
                 enrolment: Enrolment = Enrolment()) -> str:
        """Adds a participant (after consent) with the assignment ``plan(slot)``.

        The slot (Latin-square row) is the lowest one whose every holder left without
        completing (no answer for ``abandon_after_s``), else the next new one.

        Args:
            plan: ``plan(slot) -> [stimulus id]`` (:func:`gradreg_study.design.session_plan`).
            enrolment: platform ids and display sizes.

        Returns:
            The new random participant id.

        Raises:
            AlreadyRegistered: the platform id has a participant already.
        """
        pid = secrets.token_urlsafe(16)
        e = enrolment
        screen, viewport = e.screen or (None, None), e.viewport or (None, None)
        with self._transaction() as conn:
            if e.platform_pid is not None:
                old = conn.execute("SELECT participant_id, completed FROM participants WHERE "
                                   "platform = ? AND platform_pid = ?",
                                   (e.platform, e.platform_pid)).fetchone()
                if old is not None:
                    raise AlreadyRegistered(old["participant_id"], old["completed"] is not None)
            now = self.clock()
            index = conn.execute("SELECT COALESCE(MAX(participant_index), -1) + 1 "
                                 "FROM participants").fetchone()[0]
            slot = self._free_slot(conn, now)
            stimuli = plan(slot)
            conn.execute(
                "INSERT INTO participants (participant_id, participant_index, slot, created, "
                "last_seen, platform, platform_pid, platform_study_id, platform_session_id, "
                "screen_w, screen_h, viewport_w, viewport_h) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, index, slot, _now(), now, e.platform, e.platform_pid, e.platform_study_id,
                 e.platform_session_id, *screen, *viewport))
            conn.executemany("INSERT INTO assignments (participant_id, position, stimulus_id) "
                             "VALUES (?, ?, ?)", [(pid, i, s) for i, s in enumerate(stimuli)])
            self._issue(conn, self._state(conn, pid), now)
        return pid

    def _free_slot(self, conn, now: float) -> int:
        """The lowest slot whose holders all left unfinished, else one past the largest."""
        held, covered = set(), set()
        for r in conn.execute("SELECT slot, completed IS NOT NULL AS done, last_seen "
                              "FROM participants"):
            held.add(r["slot"])
            if r["done"] or now - r["last_seen"] < self.abandon_after_s:
                covered.add(r["slot"])
        free = sorted(held - covered)
        return free[0] if free else (max(held) + 1 if held else 0)

    @staticmethod
    def _issue(conn, state, now: float) -> None:
        """Notes when the next trial was first handed out (kept on later requests)."""
        if state is not None and not state.done and state.next_issued is None:
            conn.execute("UPDATE assignments SET issued = ? WHERE participant_id = ? AND "
                         "position = ? AND issued IS NULL",
                         (now, state.participant_id, state.next_position))

    @staticmethod
    def _state(conn, participant_id: str) -> ParticipantState | None:
        rows = conn.execute(
            "SELECT a.position, s.public_id, s.kind, a.issued, "
            "r.position IS NOT NULL AS answered "
            "FROM assignments a JOIN stimuli s ON s.stimulus_id = a.stimulus_id "
            "LEFT JOIN responses r ON r.participant_id = a.participant_id "
            "AND r.position = a.position WHERE a.participant_id = ? ORDER BY a.position",
            (participant_id,)).fetchall()
        if not rows:
            return None
        todo = [r for r in rows if not r["answered"]]
        return ParticipantState(participant_id, len(rows), len(rows) - len(todo),
                                todo[0]["position"] if todo else None,
                                todo[0]["public_id"] if todo else None,
                                sum(r["kind"] == "practice" for r in rows),
                                todo[0]["issued"] if todo else None)

    def state(self, participant_id: str) -> ParticipantState | None:
        """The participant's progress, or None for an unknown id (notes the next trial's
        hand-out time on first request)."""
        with self._connect() as conn:
            state = self._state(conn, participant_id)
        if state is not None and not state.done and state.next_issued is None:
            with self._transaction() as conn:
                self._issue(conn, state, self.clock())
                state = self._state(conn, participant_id)
        return state

    def participant(self, participant_id: str) -> dict | None:
        """The participant's row (slot, platform ids, times, sizes), or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM participants WHERE participant_id = ?",
                               (participant_id,)).fetchone()
        return dict(row) if row else None

    def participants(self) -> list[dict]:
        """Every registered participant (``participant_id``, ``completed`` 0/1, ``slot``,
        platform ids), also those who never answered: the participant flow's denominator."""
        with self._connect() as conn:
            return [{**dict(r), "completed": int(r["completed"] is not None)}
                    for r in conn.execute("SELECT participant_id, participant_index, slot, "
                                          "platform, platform_pid, completed FROM participants "
                                          "ORDER BY participant_index")]

    # -- answers ---------------------------------------------------------------------------
    def answer(self, participant_id: str, public_id: str, choice: int, response_ms: int, *,
               user_agent: str = "", viewport: tuple[int, int] | None = None
               ) -> tuple[AnswerStatus, ParticipantState | None]:
        """Stores one answer in its own transaction.

        Args:
            participant_id: the participant's id.
            public_id: the stimulus' public id (as in its image URL).
            choice: class index, or :data:`CANT_TELL`.
            response_ms: time from the image appearing to the answer.
            user_agent: the browser's user-agent string (truncated).
            viewport: ``(width, height)`` of the browser window when answering.

        Returns:
            ``(status, state after the answer)``; nothing changes unless ``STORED``.

        Raises:
            ValueError: ``choice``, ``response_ms`` or ``viewport`` out of range.
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
        viewport = check_size(viewport, "viewport")
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM participants WHERE participant_id = ?",
                            (participant_id,)).fetchone() is None:
                return AnswerStatus.UNKNOWN_PARTICIPANT, None
            trial = conn.execute(
                "SELECT a.position, a.stimulus_id, a.issued FROM assignments a JOIN stimuli s "
                "ON s.stimulus_id = a.stimulus_id WHERE a.participant_id = ? AND s.public_id = ?",
                (participant_id, public_id)).fetchone()
            if trial is None:
                return AnswerStatus.NOT_ASSIGNED, self._state(conn, participant_id)
            before = self._state(conn, participant_id)
            now = self.clock()
            server_rt = (None if trial["issued"] is None
                         else max(0, int(round(1000 * (now - trial["issued"])))))
            fastest = min(response_ms, server_rt if server_rt is not None else response_ms)
            if before.next_position is not None and trial["position"] > before.next_position:
                return AnswerStatus.OUT_OF_ORDER, before
            cur = conn.execute(
                "INSERT INTO responses (participant_id, position, stimulus_id, choice, "
                "response_ms, server_rt_ms, too_fast, viewport_w, viewport_h, answered, "
                "user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (participant_id, position) DO NOTHING",
                (participant_id, trial["position"], trial["stimulus_id"], choice, response_ms,
                 server_rt, int(fastest < self.min_response_ms), *(viewport or (None, None)),
                 _now(), (user_agent or "")[:USER_AGENT_CHARS]))
            if cur.rowcount == 0:
                old = conn.execute("SELECT choice FROM responses WHERE participant_id = ? AND "
                                   "position = ?", (participant_id, trial["position"])).fetchone()
                status = (AnswerStatus.DUPLICATE if old["choice"] == choice
                          else AnswerStatus.CONFLICT)
                return status, self._state(conn, participant_id)
            conn.execute("UPDATE participants SET last_seen = ? WHERE participant_id = ?",
                         (now, participant_id))
            state = self._state(conn, participant_id)
            if state.done:
                conn.execute("UPDATE participants SET completed = ? WHERE participant_id = ?",
                             (_now(), participant_id))
            self._issue(conn, state, now)
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
        """Every response joined with its stimulus and participant (:data:`EXPORT_FIELDS`);
        ``mode`` is ``simulated`` or ``human`` (the database's mode), ``completed``,
        ``practice`` and ``too_fast`` are 0/1."""
        mode = "simulated" if json.loads(self.meta()["simulated"]) else "human"
        with self._connect() as conn:
            cur = conn.execute(
                "SELECT r.participant_id, p.participant_index, p.slot, ? AS mode, p.platform, "
                "p.platform_pid, p.platform_study_id, p.platform_session_id, "
                "p.created AS started_at, p.completed IS NOT NULL AS completed, "
                "p.completed AS completed_at, p.screen_w, p.screen_h, r.position, "
                "s.kind = 'practice' AS practice, r.stimulus_id, s.kind, s.condition, "
                "s.item_id, s.original_label, s.target, r.choice, r.response_ms, "
                "r.server_rt_ms, r.too_fast, r.viewport_w, r.viewport_h, r.answered, "
                "r.user_agent FROM responses r "
                "JOIN participants p ON p.participant_id = r.participant_id "
                "JOIN stimuli s ON s.stimulus_id = r.stimulus_id "
                "ORDER BY p.participant_index, r.position", (mode,))
            return [dict(r) for r in cur]

    def summary(self) -> dict:
        """Live counts for the admin page: participants, and answers per condition split into
        target / original label / other (can't tell counted under other)."""
        with self._connect() as conn:
            started, completed = conn.execute(
                "SELECT COUNT(*), COUNT(completed) FROM participants").fetchone()
            per = conn.execute(
                "SELECT COALESCE(s.condition, s.kind) AS condition, COUNT(*) AS answers, "
                "SUM(r.choice = s.target) AS target, SUM(r.choice = s.original_label) AS original, "
                "SUM(r.choice = ?) AS cant_tell FROM responses r "
                "JOIN stimuli s ON s.stimulus_id = r.stimulus_id GROUP BY 1 ORDER BY 1",
                (CANT_TELL,)).fetchall()
        meta = self.meta()
        order = json.loads(meta["conditions"]) + ["attention", "practice"]
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


def check_size(size, what: str) -> tuple[int, int] | None:
    """``(width, height)`` in CSS pixels, or None; raises ValueError naming ``what``."""
    if size is None:
        return None
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_PIXELS
                   for v in size)):
        raise ValueError(f"{what} must be two integers (width, height) in [1, {MAX_PIXELS}], "
                         f"received {size!r}.")
    return int(size[0]), int(size[1])
