"""Line plots: training curves (MNIST cell 37) and accuracy versus λ for the sweeps."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from gradreg_tf.plotting.style import new_figure

__all__ = ["plot_lambda_sweep", "plot_lambda_sweeps", "plot_training_curves"]


def plot_training_curves(batches: Sequence[float], clean: Sequence[float],
                         adversarial: Sequence[float] | None = None, *, ax=None,
                         title: str | None = None,
                         adversarial_label: str = r"$\epsilon=0.2$ FGSM val. accuracy",
                         clean_label: str = "Normal validation accuracy"):
    """Clean and adversarial held-out accuracy over training batches (the paper's colours:
    blue adversarial, green clean).

    Args:
        batches: training batch of each point.
        clean: clean accuracy at each point.
        adversarial: accuracy on adversarial examples at each point (None: not drawn).
        ax: axes to draw on (default: a new figure).
        title: panel title.
        adversarial_label: legend entry of the adversarial curve.
        clean_label: legend entry of the clean curve.

    Returns:
        The Figure holding ``ax``.
    """
    if ax is None:
        ax = new_figure((5, 3.4)).add_subplot()
    x = np.asarray(batches, dtype=float)
    if adversarial is not None:
        ax.plot(x, np.asarray(adversarial, dtype=float), color="blue", lw=2.5,
                label=adversarial_label)
    ax.plot(x, np.asarray(clean, dtype=float), color="green", lw=2.5, label=clean_label)
    ax.set_ylim(0, 1.01)
    ax.set_xlim(0, max(float(x.max()) if x.size else 1.0, 1.0))
    ax.set_xlabel("Training iteration (batch)")
    ax.set_ylabel("Accuracy")
    ax.grid(True, alpha=0.25, lw=0.6)
    ax.legend(loc="lower right", fontsize=9)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_lambda_sweep(lambdas: Sequence[float], series: Mapping[str, Sequence[float]], *,
                      styles: Mapping[str, dict] | None = None, chosen: float | None = None,
                      ax=None, title: str | None = None, xlabel: str = r"$\lambda$",
                      legend: bool = True):
    """Accuracy versus the penalty weight λ (log x axis), one line per series.

    Args:
        lambdas: ``(L,)`` positive λ values.
        series: label -> ``(L,)`` accuracies (NaN = missing point).
        styles: label -> extra ``ax.plot`` keyword arguments.
        chosen: the paper's λ, marked by a vertical dotted line.
        ax: axes to draw on (default: a new figure).
        title: panel title.
        xlabel: x-axis label.
        legend: draw a legend in the axes (False: the caller draws one, e.g. ``fig.legend``).

    Returns:
        The Figure holding ``ax``.

    Raises:
        ValueError: if a series does not have ``len(lambdas)`` points.
    """
    if ax is None:
        ax = new_figure((5, 3.6)).add_subplot()
    lam = np.asarray(lambdas, dtype=float)
    styles = styles or {}
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        if values.shape != lam.shape:
            raise ValueError(f"series {label!r} must have {len(lam)} points, "
                             f"received {values.shape}.")
        kw = dict(marker="o", ms=4, lw=1.8)
        kw.update(styles.get(label, {}))
        ax.plot(lam, values, label=label, **kw)
    if chosen is not None:
        power = math.log10(chosen)
        quarter = abs(power * 4 - round(power * 4)) < 1e-9
        text = f"$10^{{{power:g}}}$" if quarter else f"{chosen:.4g}"
        ax.axvline(chosen, color="0.3", ls=":", lw=1.2, label=fr"paper's $\lambda$ = {text}")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Accuracy")
    ax.grid(True, alpha=0.25, lw=0.6, which="both")
    if legend:
        ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    return ax.figure


SWEEP_BLUES = {0.1: "#6baed6", 0.2: "#2171b5", 0.3: "#08306b"}


def plot_lambda_sweeps(results: Mapping[str, Mapping[str, Sequence[float]]],
                       chosen: Mapping[str, float], *, epsilons: Sequence[float], title: str,
                       label_of=str):
    """One :func:`plot_lambda_sweep` panel per sweep, sharing one legend: clean accuracy (green),
    FGSM transferred from the reference normal model (solid blues) and white-box (dashed).

    Args:
        results: kind -> ``{"lambda": [...], "clean": [...], "transfer_<eps>": [...],
            "whitebox_<eps>": [...]}``.
        chosen: kind -> the paper's λ.
        epsilons: the FGSM eps of the ``transfer_``/``whitebox_`` series.
        title: the figure's title.
        label_of: kind -> panel label (e.g. :func:`gradreg_tf.plotting.model_label`).

    Returns:
        The Figure.
    """
    kinds = list(results)
    fig = new_figure((5.6 * len(kinds) + 1, 5.0))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    for ax, kind in zip(axes, kinds):
        res = results[kind]
        series = {"clean": res["clean"]}
        styles = {"clean": dict(color="green", lw=2.4)}
        for e in epsilons:
            series[fr"FGSM $\epsilon$={e:g}, from normal"] = res[f"transfer_{e}"]
            styles[fr"FGSM $\epsilon$={e:g}, from normal"] = dict(color=SWEEP_BLUES.get(e))
        for e in epsilons:
            series[fr"FGSM $\epsilon$={e:g}, white-box"] = res[f"whitebox_{e}"]
            styles[fr"FGSM $\epsilon$={e:g}, white-box"] = dict(color=SWEEP_BLUES.get(e), ls="--",
                                                                marker="s", ms=3, lw=1.2)
        plot_lambda_sweep(res["lambda"], series, styles=styles, chosen=chosen[kind], ax=ax,
                          title=f"{label_of(kind)} sweep", legend=False)
    handles, labels = axes[0].get_legend_handles_labels()
    handles, labels = handles[:-1], labels[:-1]  # the paper's λ differs per panel
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8.5, frameon=False)
    for ax in axes:
        ax.legend(handles=[ax.lines[-1]] if ax.lines else [], fontsize=8.5, loc="best")
    fig.suptitle(title, fontsize=12)
    return fig
