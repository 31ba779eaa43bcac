"""Report pieces beyond the shares: response times and the perturbation size per condition.

Response times: median and interquartile range per condition of the server-side time per
answer (``server_rt_ms``, from sending the trial to receiving the answer) and of the browser's
``response_ms``. Perturbation size: the median L∞ distance of the shown stimulus from its clean
image, per condition, from the study's stimulus metadata (``linf``, written by
:func:`gradreg_study.stimuli.make_study`); it differs by condition (a distilled model's attack
stops at a smaller perturbation), so the shares are compared at different perturbation sizes.

Cost: O(answers log answers).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

ATTENTION = "attention"


def _quartiles(values: Sequence[float]) -> dict:
    if not len(values):
        return {"n": 0, "median": math.nan, "q1": math.nan, "q3": math.nan}
    q1, med, q3 = np.quantile(np.asarray(values, float), [0.25, 0.5, 0.75])
    return {"n": len(values), "median": float(med), "q1": float(q1), "q3": float(q3)}


def _group(row: Mapping) -> str:
    return row["condition"] if row["kind"] == "adversarial" else ATTENTION


def response_times(rows: Sequence[Mapping], conditions: Sequence[str]) -> list[dict]:
    """Per condition (and the attention checks): median, q1, q3 of ``server_rt_ms`` and
    ``response_ms`` (a column absent from the rows is reported as NaN with ``n`` 0).

    Raises:
        ValueError: a non-numeric time.
    """
    out = []
    for group in list(conditions) + [ATTENTION]:
        entry = {"condition": group}
        sub = [r for r in rows if _group(r) == group]
        for col in ("server_rt_ms", "response_ms"):
            vals = []
            for r in sub:
                if r.get(col) in (None, ""):
                    continue
                try:
                    vals.append(float(r[col]))
                except (TypeError, ValueError):
                    raise ValueError(f"column {col!r} must hold numbers, received "
                                     f"{r[col]!r}.") from None
            entry[col] = _quartiles(vals)
        out.append(entry)
    return out


def perturbation_sizes(rows: Sequence[Mapping], conditions: Sequence[str],
                       stimuli: Sequence[Mapping] | None) -> dict:
    """Median (and q1, q3) L∞ of the shown adversarial stimuli per condition.

    Args:
        rows: analysed answer rows (``stimulus_id`` or ``condition`` + ``item_id``).
        conditions: the study's conditions.
        stimuli: the study's stimulus metadata (:attr:`gradreg_study.stimuli.Study.stimuli`),
            or None.

    Returns:
        ``{"reported": True, "conditions": [{"condition", "n", "median", "q1", "q3"}]}`` or
        ``{"reported": False, "reason": ...}`` when no metadata was given or it records no
        ``linf``.
    """
    if stimuli is None:
        return {"reported": False, "reason": "no stimulus metadata given"}
    by_id, by_item = {}, {}
    for s in stimuli:
        if s.get("kind", "adversarial") != "adversarial":
            continue  # clean images (attention checks, practice) have no perturbation
        if "linf" not in s:
            return {"reported": False,
                    "reason": f"the stimulus metadata records no 'linf' (keys {sorted(s)})"}
        by_id[s.get("stimulus_id")] = s["linf"]
        by_item[(s.get("condition"), s.get("item_id"))] = s["linf"]
    out = []
    for cond in conditions:
        vals = []
        for r in rows:
            if r["kind"] == "adversarial" and r["condition"] == cond:
                v = by_id.get(r.get("stimulus_id"), by_item.get((cond, r.get("item_id"))))
                if v is not None:
                    vals.append(v)
        out.append({"condition": cond, **_quartiles(vals)})
    return {"reported": True, "conditions": out}


def viewports(rows: Sequence[Mapping]) -> dict:
    """Per participant the largest recorded viewport (``viewport_w`` x ``viewport_h``, CSS
    pixels); returns the participants' median and smallest width and height (``n`` 0 when the
    rows record none).

    Raises:
        ValueError: a non-numeric viewport size.
    """
    per: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r.get("viewport_w") in (None, "") or r.get("viewport_h") in (None, ""):
            continue
        try:
            w, h = float(r["viewport_w"]), float(r["viewport_h"])
        except (TypeError, ValueError):
            raise ValueError(f"viewport_w/viewport_h must be numbers, received "
                             f"{r['viewport_w']!r} x {r['viewport_h']!r}.") from None
        old = per.get(r["participant_id"], (0.0, 0.0))
        per[r["participant_id"]] = (max(old[0], w), max(old[1], h))
    if not per:
        return {"n": 0}
    size = np.array(list(per.values()))
    return {"n": len(per), "median_w": float(np.median(size[:, 0])),
            "median_h": float(np.median(size[:, 1])), "min_w": float(size[:, 0].min()),
            "min_h": float(size[:, 1].min())}


def viewport_text(v: Mapping) -> str:
    """One line on the participants' viewports."""
    if not v.get("n"):
        return "Viewport size not recorded."
    return (f"Viewport (CSS px, {v['n']} participants): median {v['median_w']:.0f} x "
            f"{v['median_h']:.0f}, smallest {v['min_w']:.0f} x {v['min_h']:.0f}.")


def _ms(q: Mapping) -> str:
    if not q["n"]:
        return "–"
    return f"{q['median'] / 1000:.2f} s [{q['q1'] / 1000:.2f}, {q['q3'] / 1000:.2f}]"


def response_time_table(times: Sequence[Mapping], label=str) -> list[str]:
    """Markdown lines: per condition, median [IQR] of the server and browser times."""
    lines = ["| condition | server time per answer, median [IQR] | browser time, median [IQR] |",
             "|---|---|---|"]
    for t in times:
        lines.append(f"| {label(t['condition']) if t['condition'] != ATTENTION else ATTENTION} "
                     f"| {_ms(t['server_rt_ms'])} | {_ms(t['response_ms'])} |")
    return lines
