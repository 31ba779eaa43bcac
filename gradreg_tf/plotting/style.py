"""Names, colours and markers of the paper's models, and saving figures as PNG + PDF.

The labels, colours and markers are the original's (``plot_helpers.py``: ``model_labels``,
``model_colors``, ``model_markers``), so every figure of this project matches the paper's.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

from matplotlib.figure import Figure

__all__ = ["MODEL_COLORS", "MODEL_LABELS", "MODEL_MARKERS", "PUBLISHED_LABEL", "model_color",
           "model_label", "model_marker", "model_text", "new_figure", "save_figure"]

MODEL_LABELS = {
    "normal": "Normal",
    "distilled": "Distilled",
    "advtrain": "Adv. Trained",
    "insensitive": r"Grad Reg ($\frac{1}{K}$)",
    "doubleback": r"Grad Reg ($y$)",
    "both": "Both Defenses",
    "certainty": r"Certainty penalty ($\frac{1}{K}$)",
}
MODEL_COLORS = {
    "normal": "blue",
    "distilled": "skyblue",
    "advtrain": "darkred",
    "insensitive": "lawngreen",
    "doubleback": "green",
    "both": "darkgreen",
    "certainty": "olive",
}
MODEL_MARKERS = {"normal": "o", "distilled": "p", "advtrain": "H", "insensitive": "^",
                 "doubleback": "v", "both": "D",
                 "certainty": "<"}
PUBLISHED_LABEL = "Ross & Doshi-Velez (2018)"


def model_label(name: str) -> str:
    """Display label of a model (the paper's), or the name itself for unknown models."""
    return MODEL_LABELS.get(name, name)


_PLAIN = {r"$\frac{1}{K}$": "1/K", "$y$": "y", r"$\lambda$": "λ", "$": ""}


def model_text(name: str) -> str:
    """:func:`model_label` without matplotlib's TeX markup, for tables and markdown."""
    text = model_label(name)
    for tex, plain in _PLAIN.items():
        text = text.replace(tex, plain)
    return text


def model_color(name: str) -> str:
    """The paper's colour of a model (grey for unknown models)."""
    return MODEL_COLORS.get(name, "grey")


def model_marker(name: str) -> str:
    """The paper's marker of a model (a dot for unknown models)."""
    return MODEL_MARKERS.get(name, ".")


def new_figure(figsize=(6.4, 4.8), *, layout: str | None = "constrained") -> Figure:
    """A pyplot-free :class:`~matplotlib.figure.Figure` (nothing to close, no global state)."""
    return Figure(figsize=figsize, layout=layout)


FIXED_METADATA = {
    "png": {"Software": "gradreg_tf"},
    "pdf": {"Creator": "gradreg_tf", "Producer": "gradreg_tf", "CreationDate": None},
}
"""File metadata per format: no creation date, no library version, so that the same figure
gives the same bytes (a changed committed figure then always means a changed result)."""


def save_figure(fig, stem: str | os.PathLike, *, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150) -> list[pathlib.Path]:
    """Saves ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (creating the directory), each
    atomically and with :data:`FIXED_METADATA`, so the bytes depend on the figure only.

    Args:
        fig: a matplotlib Figure.
        stem: output path without extension.
        formats: file extensions to write.
        dpi: resolution of raster formats.

    Returns:
        The written paths.
    """
    from gradreg_tf import cache

    stem = pathlib.Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = stem.with_name(f"{stem.name}.{ext}")
        cache.atomic_write(path, lambda tmp, e=ext: fig.savefig(
            tmp, format=e, dpi=dpi, metadata=FIXED_METADATA.get(e)))
        paths.append(path)
    return paths
