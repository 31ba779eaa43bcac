"use strict";
// Participant page: consent -> instructions -> practice -> one trial at a time -> closing page
// (completion code, redirect or MTurk form). The participant id lives in localStorage so that a
// reload or a later visit resumes; the server holds the assignment and decides which trial
// comes next. Answers are retried on network errors (the server stores a repeated answer once).
// Every participant-facing string comes from the server (the study's configured language).
(() => {
  const body = document.body;
  const storageKey = body.dataset.storageKey;
  const T = JSON.parse(document.getElementById("texts").textContent);
  const el = (id) => document.getElementById(id);
  const buttons = () => Array.from(document.querySelectorAll("#choices button"));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
  const query = new URLSearchParams(location.search);
  const platformParams = (body.dataset.platformParams || "").split(",").filter(Boolean);
  const kiosk = body.dataset.mode === "kiosk";
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

  function sizes() {
    return {screen: [Math.max(1, Math.round(screen.width)), Math.max(1, Math.round(screen.height))],
            viewport: [Math.max(1, window.innerWidth), Math.max(1, window.innerHeight)]};
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

  function refuse(message) {
    setReady(false);
    el("refused-text").textContent = message;
    show("refused");
  }

  function showDone() {
    setReady(false);
    const c = state.completion;
    if (c && c.code) {
      el("completion-code").textContent = fill(T.completion_code, {code: c.code});
      el("completion-code").hidden = false;
    }
    if (c && c.mturk) {
      const form = el("mturk-form");
      form.action = c.mturk.action;
      el("mturk-assignment").value = c.mturk.assignmentId;
      el("mturk-code").value = c.code;
      form.hidden = false;
    } else if (c && c.url) {
      el("completion-link").href = c.url;
      el("completion-redirect").hidden = false;
      body.dataset.redirect = c.url;
      setTimeout(() => location.assign(c.url), 1500);
    }
    if (kiosk) {  // a lab computer: the next person starts afresh
      localStorage.removeItem(storageKey);
      el("done-close").hidden = true;
      el("next-participant").hidden = false;
      setTimeout(() => location.reload(), 60000);
    }
    show("done");
  }

  function render() {
    body.dataset.answered = String(state.n_answered);
    if (state.done) {
      showDone();
      return;
    }
    const trial = state.trial;
    const nMain = state.n_trials - state.n_practice;
    if (trial.practice) {
      el("progress-text").textContent = fill(T.practice_progress, {n: state.n_answered + 1, total: state.n_practice});
      el("progress-bar").max = state.n_practice;
      el("progress-bar").value = state.n_answered;
    } else {
      const done = state.n_answered - state.n_practice;
      el("progress-text").textContent = fill(T.progress, {n: done + 1, total: nMain});
      el("progress-bar").max = nMain;
      el("progress-bar").value = done;
    }
    el("feedback").hidden = true;
    const img = el("stimulus");
    setReady(false);
    img.classList.add("loading");
    img.onload = () => {
      img.classList.remove("loading");
      body.dataset.stimulus = trial.stimulus;
      shownAt = performance.now();
      setReady(true);
      buttons()[0].focus({preventScroll: true});
    };
    img.onerror = () => fail(T.error_image);
    show("trial");
    img.src = trial.image;
  }

  async function showFeedback(feedback) {
    const p = el("feedback");
    p.textContent = feedback.text;
    p.className = feedback.correct ? "correct" : "wrong";
    p.hidden = false;
    await sleep(1200);
  }

  async function answer(choice) {
    if (busy || state === null || state.done || shownAt === null) return;
    setReady(false);
    const payload = {participant, stimulus: state.trial.stimulus, choice,
                     response_ms: Math.max(0, Math.round(performance.now() - shownAt)),
                     viewport: sizes().viewport};
    shownAt = null;
    const wasPractice = state.trial.practice;
    try {
      const r = await call("POST", "/api/answers", payload);
      if (r.status === 200 || r.status === 201) {
        if (r.data.feedback) await showFeedback(r.data.feedback);
        state = r.data.state;
        if (wasPractice && !state.done && !state.trial.practice) {
          body.dataset.answered = String(state.n_answered);
          show("practice-done");
          el("continue").focus();
        } else {
          render();
        }
      } else if (r.status === 409) {
        await resume();  // answered meanwhile in another tab: continue from the server's state
      } else {
        fail(r.data.message || `HTTP ${r.status}`);
      }
    } catch (e) {
      fail(T.error_unreachable);
    }
  }

  function platformIds() {
    const ids = {};
    for (const name of platformParams) {
      const v = query.get(name);
      if (v !== null) ids[name] = v;
    }
    return ids;
  }

  async function resume() {
    participant = localStorage.getItem(storageKey);
    if (!participant) {
      showConsent();
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
      showConsent();
    } else {
      fail(r.data.message || T.error_unavailable);
    }
  }

  function showConsent() {
    const preview = body.dataset.platform === "mturk" &&
      query.get("assignmentId") === "ASSIGNMENT_ID_NOT_AVAILABLE";
    el("preview").hidden = !preview;
    el("consent-yes").disabled = preview;  // a preview shows the task and stores nothing
    body.dataset.preview = preview ? "1" : "0";
    show("consent");
  }

  async function consent() {
    el("consent-yes").disabled = true;
    try {
      const r = await call("POST", "/api/participants",
                           {consent: true, platform_ids: platformIds(), ...sizes()});
      if (r.status === 400 && r.data.error === "needs_platform") return refuse(T.needs_platform);
      if (r.status === 409 && r.data.error === "already_participated") return refuse(T.already_done);
      if (r.status === 403 && r.data.error === "preview") return showConsent();
      if (r.status !== 201 && r.status !== 200) throw new Error(r.data.message || `HTTP ${r.status}`);
      state = r.data;
      participant = state.participant;
      localStorage.setItem(storageKey, participant);
      if (state.n_answered === 0 && !state.done) show("instructions");
      else render();
    } catch (e) {
      fail(`${T.error_unavailable} ${e.message}`);
    } finally {
      el("consent-yes").disabled = false;
    }
  }

  el("consent-yes").addEventListener("click", consent);
  el("start").addEventListener("click", render);
  el("continue").addEventListener("click", render);
  el("next-participant").addEventListener("click", () => location.reload());
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
  resume().catch((e) => fail(`${T.error_unavailable} ${e.message}`));
})();
