"""Test-only HTTP client and concurrent load test for the study server (127.0.0.1 only)."""
from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import math
import threading
import time
import urllib.parse
from typing import Mapping

import numpy as np

from gradreg_study.simulation import ResponseModel, run_participant


class HttpClient:
    """The API of a real server over one keep-alive HTTP/1.1 connection; records every
    request's status and latency."""

    def __init__(self, base_url: str, *, user_agent: str = "gradreg_tf-simulated",
                 timeout: float = 60.0):
        url = urllib.parse.urlsplit(base_url)
        self._host, self._port, self._timeout = url.hostname, url.port, timeout
        self._headers = {"User-Agent": user_agent}
        self._conn = None
        self.log: list[tuple[str, int, float]] = []

    def _send(self, method: str, path: str, body: bytes | None, headers: dict):
        for attempt in (0, 1):  # one reconnect if the server closed the kept-alive connection
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
            start = time.perf_counter()
            try:
                self._conn.request(method, path, body=body, headers={**self._headers, **headers})
                resp = self._conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
                continue
            self.log.append((path, resp.status, time.perf_counter() - start))
            return resp.status, data
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, payload=None) -> tuple[int, dict]:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {} if payload is None else {"Content-Type": "application/json"}
        status, data = self._send(method, path, body, headers)
        try:
            return status, json.loads(data) if data else {}
        except ValueError:
            return status, {}

    def get_bytes(self, path: str) -> tuple[int, bytes]:
        return self._send("GET", path, None, {})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_test` observed.

    Attributes:
        answers: ``{participant: [(public stimulus id, choice)]}`` acknowledged by the server.
        statuses: count of every HTTP status received.
        latencies_ms: every request's latency.
        seconds: wall time of the whole run.
        errors: exceptions raised in participant threads (as text).
        hanging: participants still running at the deadline.
    """

    answers: dict[str, list[tuple[str, int]]]
    statuses: collections.Counter
    latencies_ms: np.ndarray
    seconds: float
    errors: list[str]
    hanging: int = 0

    @property
    def n_requests(self) -> int:
        return int(sum(self.statuses.values()))

    @property
    def n_server_errors(self) -> int:
        return int(sum(v for k, v in self.statuses.items() if k >= 500))

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else math.nan

    def text(self) -> str:
        if not len(self.latencies_ms):
            return (f"{len(self.answers)} participants, no request answered in "
                    f"{self.seconds:.1f} s; {self.hanging} hanging, {len(self.errors)} errors")
        return (f"{len(self.answers)} participants, {self.n_requests} requests in "
                f"{self.seconds:.1f} s: latency p50 {self.percentile(50):.1f} ms, p95 "
                f"{self.percentile(95):.1f} ms, max {self.latencies_ms.max():.1f} ms; "
                f"statuses {dict(sorted(self.statuses.items()))}"
                + (f"; {self.hanging} participants still running" if self.hanging else ""))


def load_test(base_url: str, stimuli_by_public_id: Mapping[str, Mapping], *, n_classes: int,
              n_participants: int = 50, model: ResponseModel = ResponseModel(),
              retry_share: float = 0.1, fetch_images: bool = True, seed: int = 0,
              deadline: float | None = None, timeout: float = 60.0) -> LoadReport:
    """Runs ``n_participants`` whole sessions at once (one thread and connection each)
    against a running server and measures every request's latency.

    Args:
        deadline: seconds after which participants still running count as hanging (their
            threads are left to their request ``timeout``); None waits for all.
        timeout: seconds a client waits for one response.
    """
    barrier = threading.Barrier(n_participants)
    answers, errors = {}, []
    lock = threading.Lock()
    clients = [HttpClient(base_url, user_agent=f"gradreg_tf-load/{i}", timeout=timeout)
               for i in range(n_participants)]

    def one(i: int):
        client = clients[i]
        try:
            barrier.wait()
            pid, got = run_participant(client, model, stimuli_by_public_id,
                                       np.random.default_rng([seed, i]), n_classes=n_classes,
                                       retry_share=retry_share, fetch_images=fetch_images)
            with lock:
                answers[pid] = got
        except Exception as err:  # noqa: BLE001 - reported in the LoadReport
            with lock:
                errors.append(f"participant {i}: {type(err).__name__}: {err}")
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_participants)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(None if deadline is None
               else max(0.0, deadline - (time.perf_counter() - start)))
    seconds = time.perf_counter() - start
    # every request finished so far, those of participants still running included
    logs = [entry for client in clients for entry in list(client.log)]
    with lock:
        return LoadReport(dict(answers), collections.Counter(s for _, s, _ in logs),
                          np.array([1000 * sec for _, _, sec in logs]), seconds, list(errors),
                          sum(t.is_alive() for t in threads))
