"""Figures of Ross & Doshi-Velez (AAAI 2018), matplotlib only.

Every plotting function takes arrays (plus an optional ``ax`` or ``fig``) and returns the
Figure; nothing here trains, attacks or reads files. Model names, colours and markers follow
the paper (:mod:`gradreg_tf.plotting.style`). Submodules by figure kind:

    transfer        plot_transfer_grid, plot_transfer_panel      (MNIST cells 33, 45),
                    plot_cells_vs_published                      (which "insensitive"?)
    images          plot_image_grid, plot_target_grid(s)         (cells 17, 29, 41, 50)
    distributions   plot_histograms, plot_gradient_norms         (cells 21, 25)
    venn            region_counts, venn3_layout, plot_venn3      (cells 35, 47)
    curves          plot_training_curves, plot_lambda_sweep(s)   (cell 37; λ sweeps)
    seeds           plot_seed_bands                              (beyond the paper: seeds)
"""

from gradreg_tf.plotting.curves import plot_lambda_sweep, plot_lambda_sweeps, plot_training_curves
from gradreg_tf.plotting.distributions import plot_gradient_norms, plot_histograms
from gradreg_tf.plotting.seeds import plot_seed_bands
from gradreg_tf.plotting.images import plot_image_grid, plot_target_grid, plot_target_grids
from gradreg_tf.plotting.style import (MODEL_COLORS, MODEL_LABELS, MODEL_MARKERS, PUBLISHED_LABEL,
                                       model_color, model_label, model_marker, model_text,
                                       new_figure, save_figure)
from gradreg_tf.plotting.transfer import (plot_cells_vs_published, plot_transfer_grid,
                                          plot_transfer_panel)
from gradreg_tf.plotting.venn import plot_venn3, region_counts, venn3_layout

__all__ = [
    "MODEL_COLORS", "MODEL_LABELS", "MODEL_MARKERS", "PUBLISHED_LABEL", "model_color",
    "model_label", "model_marker", "model_text", "new_figure", "plot_gradient_norms",
    "plot_histograms",
    "plot_image_grid", "plot_lambda_sweep", "plot_lambda_sweeps", "plot_seed_bands", "plot_target_grid", "plot_target_grids",
    "plot_training_curves",
    "plot_cells_vs_published", "plot_transfer_grid", "plot_transfer_panel", "plot_venn3", "region_counts", "save_figure",
    "venn3_layout",
]
