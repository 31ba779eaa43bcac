"use strict";
// Participant page: consent -> instructions -> one trial at a time -> closing page.
// The participant id lives in localStorage so that a reload or a later visit resumes; the
// server holds the assignment and decides which trial comes next. Answers are retried on
// network errors (the server stores a repeated answer once).
(() => {
  const body = document.body;
  const storageKey = body.dataset.storageKey;
  const el = (id) => document.getElementById(id);
  const buttons = () => Array.from(document.querySelectorAll("#choices button"));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  let participant = null;
  let state = null;
  let shownAt = null;
  let busy = false;

  function show(id) {
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== id;
    body.dataset.screen = id;
  }

  function setReady(ready) {
    busy = !ready;
    body.dataset.ready = ready ? "1" : "0";
    for (const b of buttons()) b.disabled = !ready;
  }

  async function call(method, path, payload) {
    let lastError = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const init = {method, cache: "no-store", headers: {}};
        if (payload !== undefined) {
          init.headers["Content-Type"] = "application/json";
          init.body = JSON.stringify(payload);
        }
        const r = await fetch(path, init);
        if (r.status >= 500) throw new Error(`server error ${r.status}`);
        let data = {};
        try { data = await r.json(); } catch (e) { data = {}; }
        return {status: r.status, data};
      } catch (e) {
        lastError = e;
        await sleep(300 * 2 ** attempt);
      }
    }
    throw lastError;
  }

  function fail(message) {
    setReady(false);
    el("error-text").textContent = message;
    show("error");
  }

  function render() {
    body.dataset.answered = String(state.n_answered);
    if (state.done) {
      setReady(false);
      show("done");
      return;
    }
    const trial = state.trial;
    el("progress-text").textContent = `Image ${state.n_answered + 1} of ${state.n_trials}`;
    el("progress-bar").max = state.n_trials;
    el("progress-bar").value = state.n_answered;
    const img = el("stimulus");
    setReady(false);
    img.classList.add("loading");
    img.onload = () => {
      img.classList.remove("loading");
      body.dataset.stimulus = trial.stimulus;
      shownAt = performance.now();
      setReady(true);
    };
    img.onerror = () => fail("The image could not be loaded. Please try again.");
    show("trial");
    img.src = trial.image;
  }

  async function answer(choice) {
    if (busy || state === null || state.done || shownAt === null) return;
    setReady(false);
    const payload = {participant, stimulus: state.trial.stimulus, choice,
                     response_ms: Math.max(0, Math.round(performance.now() - shownAt))};
    shownAt = null;
    try {
      const r = await call("POST", "/api/answers", payload);
      if (r.status === 200 || r.status === 201) {
        state = r.data.state;
        render();
      } else if (r.status === 409) {
        await resume();  // answered meanwhile in another tab: continue from the server's state
      } else {
        fail(r.data.message || `The answer was refused (HTTP ${r.status}).`);
      }
    } catch (e) {
      fail("The server cannot be reached. Check your connection, then try again.");
    }
  }

  async function resume() {
    participant = localStorage.getItem(storageKey);
    if (!participant) {
      show("consent");
      return;
    }
    const r = await call("GET", `/api/participants/${encodeURIComponent(participant)}`);
    if (r.status === 200) {
      state = r.data;
      if (state.n_answered === 0 && !state.done) show("instructions");
      else render();
    } else if (r.status === 404 || r.status === 400) {
      localStorage.removeItem(storageKey);
      participant = null;
      show("consent");
    } else {
      fail(r.data.message || `The study is not available (HTTP ${r.status}).`);
    }
  }

  async function consent() {
    el("consent-yes").disabled = true;
    try {
      const r = await call("POST", "/api/participants", {consent: true});
      if (r.status !== 201) throw new Error(r.data.message || `HTTP ${r.status}`);
      state = r.data;
      participant = state.participant;
      localStorage.setItem(storageKey, participant);
      show("instructions");
    } catch (e) {
      fail(`Could not start the study: ${e.message}`);
    } finally {
      el("consent-yes").disabled = false;
    }
  }

  function start() {
    render();
  }

  el("consent-yes").addEventListener("click", consent);
  el("start").addEventListener("click", start);
  el("retry").addEventListener("click", () => resume().catch((e) => fail(e.message)));
  for (const b of buttons()) {
    b.addEventListener("click", () => answer(Number(b.dataset.choice)));
  }
  document.addEventListener("keydown", (e) => {
    if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || body.dataset.screen !== "trial") return;
    const key = e.key.toLowerCase();
    const b = buttons().find((btn) => btn.dataset.key && btn.dataset.key === key);
    if (b) {
      e.preventDefault();
      answer(Number(b.dataset.choice));
    }
  });
  resume().catch((e) => fail(`The study is not available: ${e.message}`));
})();
