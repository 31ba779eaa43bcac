"""The robustness-audit figure: one panel per model, accuracy vs eps for every attack.

Beyond the paper (:mod:`gradreg_tf.eval.audit`). The per-example worst case is a bold grey band
drawn under the attack curves (so the attack that reaches it stays visible); a panel whose model
is flagged as gradient-masked says so in a boxed note naming the checks that fired.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from gradreg_tf.plotting.style import model_color, model_label, new_figure

__all__ = ["AUDIT_STYLES", "plot_robustness_audit"]

AUDIT_STYLES = {
    "fgsm_ce": dict(label="FGSM (CE)", color="tab:blue", ls="--", marker="o"),
    "fgsm_margin": dict(label="FGSM (margin)", color="tab:orange", ls="--", marker="s"),
    "pgd_ce": dict(label="PGD (CE)", color="tab:blue", ls="-", marker="o"),
    "pgd_margin": dict(label="PGD (margin)", color="tab:orange", ls="-", marker="s"),
    "apgd_ce": dict(label="APGD (CE)", color="tab:purple", ls="-", marker="v"),
    "apgd_t": dict(label="APGD-T (DLR)", color="tab:red", ls="-", marker="D"),
    "square": dict(label="+ Square on gradient survivors", color="tab:brown", ls="-", marker="P"),
    "best_transfer": dict(label="best transfer", color="tab:green", ls="-.", marker="^"),
    "noise": dict(label="random-sign noise", color="grey", ls=":", marker="x"),
    "worst_case": dict(label="worst case", color="black", ls="-", marker=None, lw=6.0,
                       alpha=0.35, solid_capstyle="butt"),
}
"""Label, colour, line style and marker of each audit curve."""


def plot_robustness_audit(eps: Sequence[float], curves: Mapping[str, Mapping[str, np.ndarray]],
                          *, flags: Mapping[str, Sequence[str]] | None = None,
                          title: str | None = None, caption: str | None = None, ncols: int = 3):
    """Accuracy vs eps per model (one panel each) for every audit curve.

    Args:
        eps: perturbation sizes ``(E,)``.
        curves: ``{model: {curve: accuracies (E,)}}``; curve names are the keys of
            :data:`AUDIT_STYLES` (others are drawn thin and grey).
        flags: ``{model: names of the masking checks that fired}``; non-empty ones are
            written in a boxed note inside the model's panel.
        title: figure title.
        caption: small text under the panels.
        ncols: panels per row.

    Returns:
        The Figure.

    Raises:
        ValueError: no models, or a curve whose length is not ``len(eps)``.
    """
    eps = np.asarray(eps, dtype=float)
    models = list(curves)
    if not models:
        raise ValueError("curves must hold at least one model, received an empty mapping.")
    ncols = max(1, min(int(ncols), len(models)))
    nrows = math.ceil(len(models) / ncols)
    fig = new_figure((4.0 * ncols, 3.4 * nrows + 0.8))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, name in zip(axes, models):
        for key, values in curves[name].items():
            values = np.asarray(values, dtype=float)
            if values.shape != eps.shape:
                raise ValueError(f"curve {key!r} of model {name!r} has shape {values.shape}, "
                                 f"expected {eps.shape} (one value per eps).")
            style = dict(AUDIT_STYLES.get(key, dict(label=key, color="lightgrey")))
            lw = style.pop("lw", 1.4)
            ax.plot(eps, values, lw=lw, ms=4, zorder=2 if key == "worst_case" else 3, **style)
        ax.set_title(model_label(name), fontsize=11, fontweight="bold", color=model_color(name))
        fired = list((flags or {}).get(name, ()))
        if fired:
            note = "gradient-masked:\n" + "\n".join("· " + f.replace("_", " ") for f in fired)
            ax.text(0.97, 0.62, note, transform=ax.transAxes, ha="right", multialignment="left",
                    va="center", fontsize=7.5, color="darkred", zorder=5,
                    bbox=dict(boxstyle="round,pad=0.35", fc="white", ec="darkred", alpha=0.9))
        ax.set_xlim(eps.min(), eps.max())
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(r"Perturbation $\epsilon$ ($L_\infty$)")
        ax.set_ylabel("Accuracy")
        ax.grid(alpha=0.3)
    for ax in axes[len(models):]:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(axes) > len(models):  # a spare panel holds the legend, as the transfer figure
        axes[len(models)].legend(handles, labels, loc="center", title="Attack", fontsize=9)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4),
                   fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    if caption:
        fig.supxlabel(caption, fontsize=8, color="0.3")
    return fig
