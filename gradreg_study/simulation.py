"""Simulated participants: pilot the analysis, test the server under load, measure error rates.

* :class:`ResponseModel`: how a simulated person answers, per condition (known shares).
* :func:`toy_study`: a small study of random images, no models needed.
* :func:`run_participant`: one whole session through the HTTP API (a Flask test client or a
  real server via :class:`HttpClient`); :func:`load_test` runs many at once against a real
  server and reports latencies.
* :func:`simulate_rows` / :func:`rejection_rate`: answers drawn directly (no HTTP), to measure
  how often the primary test rejects, e.g. at no effect (its type-I error rate).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Mapping, Sequence

import numpy as np

from gradreg_study import analysis, stimuli
from gradreg_study.storage import CANT_TELL
from gradreg_tf.recipes import PAPER_MODELS

PAPER_CONDITIONS = PAPER_MODELS  # the study shows the paper's five models


class SimulationError(RuntimeError):
    """The server answered a simulated participant unexpectedly."""


@dataclasses.dataclass(frozen=True)
class ResponseModel:
    """Answer probabilities of a simulated participant.

    On an adversarial trial of condition ``c`` the answer is the target with probability
    ``target_share[c]`` (``default_target_share`` for unlisted conditions), the original
    label with ``original_share``, "can't tell" with ``cant_tell_share`` and otherwise a
    uniformly drawn other class. On an attention check it is the true label with probability
    ``attention_accuracy``, else another class.
    """

    target_share: Mapping[str, float] = dataclasses.field(default_factory=dict)
    default_target_share: float = 0.15
    original_share: float = 0.5
    cant_tell_share: float = 0.1
    attention_accuracy: float = 0.95

    def __post_init__(self):
        shares = list(self.target_share.values()) + [self.default_target_share]
        for p in shares + [self.original_share, self.cant_tell_share, self.attention_accuracy]:
            if not (isinstance(p, (int, float)) and 0 <= p <= 1):
                raise ValueError(f"probabilities must be in [0, 1], received {p!r}.")
        worst = max(shares) + self.original_share + self.cant_tell_share
        if worst > 1 + 1e-12:
            raise ValueError(f"target + original + can't-tell shares exceed 1 ({worst:.3f}).")

    def target_for(self, condition: str) -> float:
        return float(self.target_share.get(condition, self.default_target_share))

    def choose(self, rng: np.random.Generator, stimulus: Mapping, n_classes: int) -> int:
        """One answer to ``stimulus`` (a stimuli-table row: kind, condition, labels)."""
        label = stimulus["original_label"]
        if stimulus["kind"] in ("attention", "practice"):  # clean images
            if rng.random() < self.attention_accuracy:
                return label
            return int(rng.choice([k for k in range(n_classes) if k != label]))
        target = stimulus["target"]
        u = rng.random()
        pt = self.target_for(stimulus["condition"])
        if u < pt:
            return target
        if u < pt + self.original_share:
            return label
        if u < pt + self.original_share + self.cant_tell_share:
            return CANT_TELL
        return int(rng.choice([k for k in range(n_classes) if k not in (label, target)]))


def toy_study(out_dir, *, n_items: int = 20, conditions: Sequence[str] = PAPER_CONDITIONS,
              n_classes: int = 10, n_attention: int = 10, size: int = 8, seed: int = 0,
              overwrite: bool = False) -> stimuli.Study:
    """A study folder of random ``size`` x ``size`` images (no models, no attacks): for tests
    and trying the web page. The manifest says it is a toy.

    Raises:
        ValueError: fewer than 2 classes or no items.
    """
    if n_classes < 2 or n_items < 1:
        raise ValueError(f"need >= 2 classes and >= 1 item, received {n_classes}, {n_items}.")
    rng = np.random.default_rng(seed)
    items, entries, images = [], [], {}
    for i in range(n_items):
        label = i % n_classes
        target = (label + 1 + (i // n_classes) % (n_classes - 1)) % n_classes
        item_id = f"test{i}-to{target}"
        items.append({"item_id": item_id, "test_index": i, "original_label": label,
                      "target": target})
        for c in conditions:
            file = f"images/{c}/{item_id}.png"
            images[file] = rng.integers(0, 256, (size, size, 1), dtype=np.uint8)
            entries.append({"stimulus_id": f"{c}/{item_id}", "kind": "adversarial",
                            "condition": c, "item_id": item_id, "original_label": label,
                            "target": target, "file": file})
    attention = []
    for j in range(n_attention):
        file = f"images/{stimuli.CLEAN}/test{1000 + j}.png"
        images[file] = rng.integers(0, 256, (size, size, 1), dtype=np.uint8)
        attention.append({"stimulus_id": f"{stimuli.CLEAN}/test{1000 + j}", "kind": "attention",
                          "condition": None, "item_id": None, "original_label": j % n_classes,
                          "target": None, "file": file, "test_index": 1000 + j})
    manifest = {"format": stimuli.FORMAT, "dataset": "toy",
                "class_names": [str(k) for k in range(n_classes)], "bounds": [0.0, 1.0],
                "image_shape": [size, size, 1], "conditions": list(conditions), "items": items,
                "stimuli": entries, "attention": attention, "dropped": [],
                "attack": {"attack": "none: toy study of random images (simulation.toy_study)"}}
    return stimuli.write_study(out_dir, manifest, images, overwrite=overwrite)


class SimulatedClock:
    """A clock for the store (``create_app(clock=...)``) that simulated participants advance
    by their response times, so that the server's timing (``server_rt_ms``, ``too_fast``,
    abandonment) sees human-like times although the answers arrive at once."""

    def __init__(self, start: float = 1.0e9):
        self.now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += float(seconds)


class FlaskClient:
    """The API through a Flask test client (no sockets).

    Args:
        app: from :func:`gradreg_study.server.create_app`.
        user_agent: the User-Agent header sent.
        clock: the app's :class:`SimulatedClock`, advanced by each simulated response time.
    """

    def __init__(self, app, *, user_agent: str = "gradreg_tf-simulated",
                 clock: SimulatedClock | None = None):
        self._client = app.test_client()
        self._headers = {"User-Agent": user_agent}
        self.clock = clock

    def request(self, method: str, path: str, payload=None) -> tuple[int, dict]:
        resp = self._client.open(path, method=method, json=payload, headers=self._headers)
        return resp.status_code, (resp.get_json(silent=True) or {})

    def get_bytes(self, path: str) -> tuple[int, bytes]:
        resp = self._client.get(path, headers=self._headers)
        return resp.status_code, resp.data


def run_participant(client, model: ResponseModel, stimuli_by_public_id: Mapping[str, Mapping],
                    rng: np.random.Generator, *, n_classes: int, retry_share: float = 0.0,
                    fetch_images: bool = False, stop_after: int | None = None,
                    participant: str | None = None,
                    record: list | None = None) -> tuple[str, list[tuple[str, int]]]:
    """Consents (or resumes ``participant``) and answers trials until the study ends.

    Args:
        client: :class:`FlaskClient` or :class:`HttpClient`.
        model: the answer probabilities.
        stimuli_by_public_id: ground truth of every stimulus
            (:meth:`gradreg_study.storage.Store.stimuli`).
        rng: random generator of the answers.
        n_classes: number of classes.
        retry_share: probability of sending an answer twice (must be stored once).
        fetch_images: also download each trial's image, as a browser does.
        stop_after: stop after this many answers (a participant who leaves).
        participant: resume this participant instead of registering a new one.
        record: if given, ``(participant, stimulus, choice)`` is appended as soon as the
            server acknowledges an answer (kept when a later request fails).

    Returns:
        ``(participant id, [(public stimulus id, choice)])`` of the answers acknowledged.

    Raises:
        SimulationError: any unexpected status code.
    """
    if participant is None:
        status, state = client.request("POST", "/api/participants", {"consent": True})
        if status != 201:
            raise SimulationError(f"registering returned {status}: {state}")
    else:
        status, state = client.request("GET", f"/api/participants/{participant}")
        if status != 200:
            raise SimulationError(f"resuming {participant} returned {status}: {state}")
    pid = state["participant"]
    answers = []
    while not state["done"] and (stop_after is None or len(answers) < stop_after):
        trial = state["trial"]
        if fetch_images:
            status, _ = client.get_bytes(trial["image"])
            if status != 200:
                raise SimulationError(f"image {trial['image']} returned {status}")
        choice = model.choose(rng, stimuli_by_public_id[trial["stimulus"]], n_classes)
        payload = {"participant": pid, "stimulus": trial["stimulus"], "choice": choice,
                   "response_ms": int(rng.integers(400, 3000))}
        if getattr(client, "clock", None) is not None:
            client.clock.advance(payload["response_ms"] / 1000 + 0.05)
        status, reply = client.request("POST", "/api/answers", payload)
        if status != 201:
            raise SimulationError(f"answer {payload} returned {status}: {reply}")
        if record is not None:
            record.append((pid, trial["stimulus"], choice))
        if rng.random() < retry_share:
            again, reply = client.request("POST", "/api/answers", payload)
            if again != 200 or reply.get("status") != "duplicate":
                raise SimulationError(f"a retried answer returned {again}: {reply}")
        answers.append((trial["stimulus"], choice))
        state = reply["state"]
    return pid, answers


def simulate_rows(rng: np.random.Generator, *, n_participants: int, trials_per_condition: int,
                  conditions: Sequence[str], target_share: Mapping[str, float],
                  participant_sd: float = 0.5, original_share: float = 0.5,
                  n_classes: int = 10) -> list[dict]:
    """Answer rows (as exported) drawn directly: participant ``i`` answers the target in
    condition ``c`` with probability ``expit(logit(target_share[c]) + u_i)``, ``u_i ~ N(0,
    participant_sd)`` (people differ in how readily they see the target), else the original
    label with ``original_share`` of the rest, else another class."""
    rows = []
    logit = {c: math.log(target_share[c] / (1 - target_share[c])) for c in conditions}
    for i in range(n_participants):
        u = rng.normal(0, participant_sd)
        for c in conditions:
            p = 1 / (1 + math.exp(-(logit[c] + u)))
            for j in range(trials_per_condition):
                label, target = j % n_classes, (j + 1) % n_classes
                r = rng.random()
                choice = target if r < p else (label if r < p + (1 - p) * original_share
                                               else (target + 1) % n_classes)
                rows.append({"participant_id": f"sim{i}", "kind": "adversarial",
                             "condition": c, "item_id": f"item{j}", "original_label": label,
                             "target": target, "choice": choice})
    return rows


@dataclasses.dataclass(frozen=True)
class RejectionRate:
    """How often the primary test rejected over repeated simulated studies."""

    rate: float
    rejections: int
    n_simulations: int
    alpha: float
    interval: tuple[float, float]  # Wilson 95% interval of the rate

    def text(self) -> str:
        return (f"rejected {self.rejections}/{self.n_simulations} = {self.rate:.3f} at "
                f"alpha={self.alpha:g} (95% interval {self.interval[0]:.3f}-"
                f"{self.interval[1]:.3f})")


def rejection_rate(*, n_simulations: int = 200, n_participants: int = 24,
                   trials_per_condition: int = 10, control_share: float = 0.3,
                   treatment_share: float | None = None, participant_sd: float = 0.5,
                   alpha: float = 0.05, n_permutations: int = 999, seed: int = 0,
                   primary: tuple[str, str] = analysis.PRIMARY) -> RejectionRate:
    """Share of simulated studies in which the primary contrast's permutation test rejects.

    With ``treatment_share=None`` (the same share as the control) every rejection is a false
    positive, so the rate estimates the test's type-I error (nominal: ``alpha``); with a
    larger ``treatment_share`` it estimates power. Each study has ``n_participants`` who each
    answer ``trials_per_condition`` trials of both primary conditions (:func:`simulate_rows`).
    Cost: ``n_simulations * n_permutations * n_participants``.
    """
    treatment_share = control_share if treatment_share is None else treatment_share
    rng = np.random.default_rng(seed)
    shares = {primary[0]: treatment_share, primary[1]: control_share}
    hits = 0
    for s in range(n_simulations):
        rows = simulate_rows(rng, n_participants=n_participants,
                             trials_per_condition=trials_per_condition, conditions=primary,
                             target_share=shares, participant_sd=participant_sd)
        res = analysis.primary_contrast(rows, *primary, alpha=alpha,
                                        n_permutations=n_permutations, n_bootstrap=0, seed=s)
        hits += res["significant"]
    return RejectionRate(hits / n_simulations, hits, n_simulations, alpha,
                         analysis.wilson_interval(hits, n_simulations))
