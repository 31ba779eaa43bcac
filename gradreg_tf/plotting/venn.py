"""Three-set Venn diagrams with matplotlib only (no ``matplotlib_venn``).

The paper's misclassification-overlap figure (MNIST cell 35; plot_helpers.py:107-125) shows,
for the examples crafted on one source model, which of three models each example fools.
:func:`venn3_layout` is pure numpy (the counts come from
:func:`gradreg_tf.eval.metrics.region_counts`, re-exported here); :func:`plot_venn3` draws.

The layout is area-proportional in the way ``matplotlib_venn`` is: each circle's area is its
set's size and each pair of circles is placed so that their lens has the area of the pair's
intersection (then the three centres form the triangle of those distances, or lie on a line
when no triangle exists). The triple intersection is not fitted, so region areas are only
approximate; the numbers written in the regions are exact.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.patches import Circle

from gradreg_tf.eval.metrics import REGIONS, region_counts
from gradreg_tf.plotting.style import new_figure

__all__ = ["REGIONS", "region_counts", "plot_venn3", "venn3_layout"]

def _lens_area(r1: float, r2: float, d: float) -> float:
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a1 = r1 * r1 * math.acos((d * d + r1 * r1 - r2 * r2) / (2 * d * r1))
    a2 = r2 * r2 * math.acos((d * d + r2 * r2 - r1 * r1) / (2 * d * r2))
    tri = 0.5 * math.sqrt(max(0.0, (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)))
    return a1 + a2 - tri


def _distance_for_overlap(r1: float, r2: float, overlap: float) -> float:
    lo, hi = abs(r1 - r2), r1 + r2
    if overlap <= 0:
        return hi + 0.05 * max(r1, r2)  # disjoint sets: a small gap
    if overlap >= math.pi * min(r1, r2) ** 2:
        return lo
    for _ in range(60):  # lens area decreases with distance
        mid = 0.5 * (lo + hi)
        if _lens_area(r1, r2, mid) > overlap:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def venn3_layout(counts: Mapping[str, int], *, min_radius: float = 0.2,
                 grid: int = 240) -> dict:
    """Circle centres and radii for :func:`region_counts` output, and label positions.

    Args:
        counts: ``{code: count}`` for the 7 :data:`REGIONS`.
        min_radius: smallest radius, as a fraction of the largest (keeps empty sets visible).
        grid: resolution of the point grid used to place the region labels.

    Returns:
        dict with ``centers`` ``(3, 2)``, ``radii`` ``(3,)`` (normalised so the largest is 1),
        and ``labels`` ``{code: (x, y)}``: for each region with at least one grid point, the
        grid point farthest inside it; regions the layout cannot show are missing.
    """
    c = {code: float(counts.get(code, 0)) for code in REGIONS}
    size = [sum(v for code, v in c.items() if code[i] == "1") for i in range(3)]
    pair = {(i, j): sum(v for code, v in c.items() if code[i] == "1" and code[j] == "1")
            for i, j in ((0, 1), (0, 2), (1, 2))}
    if max(size) <= 0:
        size = [1.0, 1.0, 1.0]
        pair = {k: 0.3 for k in pair}
    scale = max(size)
    radii = np.array([max(math.sqrt(s / scale), min_radius) for s in size])
    areas = math.pi * radii ** 2
    frac = {k: v / scale * math.pi for k, v in pair.items()}
    # keep the lens no larger than the smaller (possibly floored) circle
    d = {k: _distance_for_overlap(radii[k[0]], radii[k[1]], min(frac[k], areas[list(k)].min()))
         for k in pair}
    d01, d02, d12 = d[(0, 1)], d[(0, 2)], d[(1, 2)]
    x = (d02 ** 2 - d12 ** 2 + d01 ** 2) / (2 * d01) if d01 > 0 else 0.0
    y = -math.sqrt(max(d02 ** 2 - x ** 2, 0.0))
    centers = np.array([[0.0, 0.0], [d01, 0.0], [x, y]])
    centers -= np.average(centers, axis=0, weights=areas)
    lo = (centers - radii[:, None]).min(axis=0)
    hi = (centers + radii[:, None]).max(axis=0)
    xs, ys = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    dist = np.linalg.norm(pts[:, None, :] - centers[None], axis=2)  # (P, 3)
    inside = dist < radii[None]
    margin = np.min(np.abs(dist - radii[None]), axis=1)
    labels = {}
    for code in REGIONS:
        want = np.array([b == "1" for b in code])
        sel = np.all(inside == want[None], axis=1)
        if sel.any():
            k = np.flatnonzero(sel)[np.argmax(margin[sel])]
            labels[code] = (float(pts[k, 0]), float(pts[k, 1]))
    return {"centers": centers, "radii": radii, "labels": labels}


def plot_venn3(counts: Mapping[str, int], set_labels: Sequence[str], colors: Sequence[str], *,
               ax=None, title: str | None = None, alpha: float = 0.4):
    """Draws a 3-set Venn diagram with the region counts written inside.

    Set 0 is drawn top left, set 1 top right, set 2 at the bottom (``matplotlib_venn.venn3``'s
    arrangement, which the paper used).

    Args:
        counts: ``{code: count}`` (see :func:`region_counts`).
        set_labels: the three set names.
        colors: the three fill colours.
        ax: axes to draw on (default: a new figure).
        title: axes title.
        alpha: fill opacity.

    Returns:
        The Figure holding ``ax``.

    Raises:
        ValueError: unless three labels and three colours are given.
    """
    if len(set_labels) != 3 or len(colors) != 3:
        raise ValueError(f"need three set labels and three colours, received "
                         f"{len(set_labels)} and {len(colors)}.")
    if ax is None:
        ax = new_figure((4, 3.6)).add_subplot()
    layout = venn3_layout(counts)
    centers, radii = layout["centers"], layout["radii"]
    for (cx, cy), r, color in zip(centers, radii, colors):
        ax.add_patch(Circle((cx, cy), r, facecolor=color, alpha=alpha, edgecolor="none"))
        ax.add_patch(Circle((cx, cy), r, fill=False, edgecolor=color, lw=1.0, alpha=0.9))
    for code in REGIONS:
        pos = layout["labels"].get(code)
        if pos is None:  # listed under the diagram when its count is not zero
            continue
        ax.text(*pos, str(int(counts.get(code, 0))), ha="center", va="center", fontsize=9.5)
    hidden = {code: int(counts.get(code, 0)) for code in REGIONS
              if code not in layout["labels"] and counts.get(code, 0)}
    mid = centers.mean(axis=0)
    for i, ((cx, cy), r, label) in enumerate(zip(centers, radii, set_labels)):
        direction = np.array([cx, cy]) - mid
        if i == 2 or np.linalg.norm(direction) < 1e-9:
            direction = np.array([0.0, -1.0]) if i == 2 else np.array([(-1.0) ** (i + 1), 1.0])
        direction = direction / np.linalg.norm(direction)
        if i < 2:  # labels of the top circles go above-outside, as venn3 does
            direction = np.array([direction[0], abs(direction[1]) + 0.8])
            direction /= np.linalg.norm(direction)
        x, y = np.array([cx, cy]) + direction * (r + 0.12)
        ha = "center" if i == 2 else ("right" if direction[0] < 0 else "left")
        ax.text(x, y, label, ha=ha, va="top" if i == 2 else "bottom", fontsize=10.5)
    if hidden:
        text = ", ".join(f"{code}: {n}" for code, n in hidden.items())
        ax.text(0.5, -0.02, f"not drawn: {text}", transform=ax.transAxes, ha="center",
                va="top", fontsize=7, color="0.4")
    lo = (centers - radii[:, None]).min(axis=0) - 0.35
    hi = (centers + radii[:, None]).max(axis=0) + 0.35
    ax.set_xlim(lo[0] - 0.3, hi[0] + 0.3)
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return ax.figure
