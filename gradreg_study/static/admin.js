"use strict";
// Admin page: live counts per condition from /admin/api/summary (authorised by the HttpOnly
// session cookie set at log-in; the token itself never reaches a URL or this script).
(() => {
  if (document.body.dataset.page !== "admin") return;
  const el = (id) => document.getElementById(id);
  const pct = (k, n) => (n ? (100 * k / n).toFixed(1) + "%" : "–");

  async function refresh() {
    try {
      const r = await fetch("/admin/api/summary", {cache: "no-store",
        credentials: "same-origin"});
      if (!r.ok) throw new Error("HTTP " + r.status);
      const s = await r.json();
      el("participants").textContent = `${s.participants_started} participants started, ` +
        `${s.participants_completed} completed` + (s.simulated ? " (SIMULATED data)" : "") + ".";
      const body = el("counts").querySelector("tbody");
      body.replaceChildren(...s.conditions.map((c) => {
        const tr = document.createElement("tr");
        const other = c.answers - c.target - c.original - c.cant_tell;
        const cells = [c.condition, c.answers,
          (c.condition === "attention" || c.condition === "practice") ? "–" : `${c.target} (${pct(c.target, c.answers)})`,
          `${c.original} (${pct(c.original, c.answers)})`,
          `${c.cant_tell} (${pct(c.cant_tell, c.answers)})`, `${other} (${pct(other, c.answers)})`];
        for (const v of cells) {
          const td = document.createElement("td");
          td.textContent = String(v);
          tr.appendChild(td);
        }
        return tr;
      }));
      el("updated").textContent = new Date().toLocaleTimeString();
    } catch (e) {
      el("updated").textContent = "failed: " + e.message;
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
