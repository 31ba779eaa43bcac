"""Plotting functions (arrays in, Figure out), the 3-set Venn layout, saliency normalizers."""

import math

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from gradreg_tf import plotting, saliency
from gradreg_tf.eval.grids import PAPER_EPSILONS
from gradreg_tf.plotting import venn
from gradreg_tf.recipes import PAPER_MODELS

matplotlib.use("Agg")


def test_style_tables_cover_the_paper_models():
    for m in PAPER_MODELS:
        assert m in plotting.MODEL_LABELS and m in plotting.MODEL_COLORS
        assert m in plotting.MODEL_MARKERS
    assert plotting.model_label("doubleback") == r"Grad Reg ($y$)"
    assert plotting.model_label("nope") == "nope" and plotting.model_color("nope") == "grey"


def test_transfer_grid_figure(tmp_path):
    acc = np.random.default_rng(0).uniform(0, 1, (5, 5, 8))
    ref = acc.copy()
    ref[0, 0] = np.nan
    fig = plotting.plot_transfer_grid(PAPER_EPSILONS, acc, PAPER_MODELS, reference=ref,
                                      title="t", caption="c", notes=["n"])
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 6 and not axes[5].axison
    assert axes[0].get_title().startswith("Normal")
    # 5 of ours per panel plus the faint published ones (one missing in panel 0)
    assert len(axes[0].lines) == 9 and len(axes[1].lines) == 10
    np.testing.assert_allclose(axes[2].lines[1].get_ydata(), acc[2, 0])
    paths = plotting.save_figure(fig, tmp_path / "sub" / "grid")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size for p in paths)
    with pytest.raises(ValueError, match=r"shape \(sources, targets, eps\) = \(5, 5, 8\)"):
        plotting.plot_transfer_grid(PAPER_EPSILONS, acc[:, :, :3], PAPER_MODELS)
    with pytest.raises(ValueError, match="reference must have the shape"):
        plotting.plot_transfer_grid(PAPER_EPSILONS, acc, PAPER_MODELS, reference=acc[:4])


def test_panel_on_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plotting.plot_transfer_panel([0, 0.5], np.array([[1, 0.5]]), ["normal"], ax=ax)
    assert out is fig and ax.get_ylabel() == "Accuracy"
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        plotting.plot_transfer_panel([0, 0.5], np.array([1, 0.5]), ["normal"], ax=ax)


def test_image_grids():
    imgs = np.random.default_rng(0).uniform(size=(3, 4, 8, 8, 1))
    fig = plotting.plot_image_grid(imgs, row_labels=list("abc"), col_labels=list("wxyz"),
                                   title="two\nlines")
    assert len(fig.axes) == 12 and fig.axes[0].get_ylabel() == "a"
    with pytest.raises(ValueError, match="row_labels must have 3 entries"):
        plotting.plot_image_grid(imgs, row_labels=["a"])
    grid = np.random.default_rng(1).uniform(size=(3, 3, 8, 8))
    success = np.array([[1, 0, 1], [1, 1, 1], [0, 1, 1]], bool)
    fig = plotting.plot_target_grids({"normal": grid, "doubleback": grid}, ["0", "1", "2"],
                                     success={"normal": success}, title="t", caption="c")
    assert len(fig.axes) == 18
    frames = [p for ax in fig.axes[:9] for p in ax.patches]
    assert len(frames) == 3 + 2  # diagonal outlines + the two failures
    with pytest.raises(ValueError, match="K = len"):
        plotting.plot_target_grid(grid, ["0", "1"])


def test_histograms_and_boxes():
    edges = np.linspace(-5, 0, 6)
    fig = plotting.plot_histograms(edges, {"normal": np.arange(5), "distilled": np.ones(5)})
    assert len(fig.axes[0].patches) == 4
    with pytest.raises(ValueError, match="must have 5 entries"):
        plotting.plot_histograms(edges, {"normal": np.arange(4)})
    fig = plotting.plot_gradient_norms({"normal": [1e-3, 1e-2], "distilled": [1e-20, 1e-20]},
                                       ylabel="norm")
    assert fig.axes[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Normal", "Distilled"]
    with pytest.raises(ValueError, match="must be positive"):
        plotting.plot_gradient_norms({"normal": [0.0, 1.0]})


def test_curves():
    fig = plotting.plot_training_curves([100, 200], [0.9, 0.95], [0.5, 0.6], title="x")
    assert len(fig.axes[0].lines) == 2
    fig = plotting.plot_lambda_sweep([1, 10, 100], {"clean": [0.9, 0.9, 0.8]}, chosen=10)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) == 2
    with pytest.raises(ValueError, match="3 points"):
        plotting.plot_lambda_sweep([1, 10, 100], {"clean": [0.9]})


# ------------------------------------------------------------------------------------- Venn


def test_region_counts():
    a = np.array([1, 1, 0, 0, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 0, 1, 1, 0], bool)
    c = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    counts = venn.region_counts([a, b, c])
    assert counts == {"100": 1, "010": 1, "001": 1, "110": 1, "101": 0, "011": 1, "111": 1}
    with pytest.raises(ValueError, match="exactly three masks"):
        venn.region_counts([a, b])
    with pytest.raises(ValueError, match="equal lengths"):
        venn.region_counts([a, b, c[:3]])


def test_lens_area_and_distance():
    assert venn._lens_area(1, 1, 2.5) == 0
    assert venn._lens_area(1, 0.5, 0.2) == pytest.approx(math.pi * 0.25)
    for target in (0.1, 0.5, 1.0):
        d = venn._distance_for_overlap(1.0, 0.8, target)
        assert venn._lens_area(1.0, 0.8, d) == pytest.approx(target, rel=1e-6)


def test_venn_layout_is_area_proportional_for_pairs():
    counts = {"100": 30, "010": 20, "001": 10, "110": 15, "101": 5, "011": 8, "111": 4}
    lay = venn.venn3_layout(counts)
    sizes = [30 + 15 + 5 + 4, 20 + 15 + 8 + 4, 10 + 5 + 8 + 4]
    np.testing.assert_allclose(lay["radii"] ** 2, np.array(sizes) / max(sizes))
    # pairwise lens areas match the pair intersections (scaled like the circles)
    c = lay["centers"]
    for (i, j), inter in {(0, 1): 19, (0, 2): 9, (1, 2): 12}.items():
        d = np.linalg.norm(c[i] - c[j])
        area = venn._lens_area(lay["radii"][i], lay["radii"][j], d)
        assert area == pytest.approx(math.pi * inter / max(sizes), rel=1e-4)
    assert set(lay["labels"]) == set(venn.REGIONS)
    # each label lies in its own region
    for code, (x, y) in lay["labels"].items():
        inside = np.linalg.norm(c - [x, y], axis=1) < lay["radii"]
        assert "".join("1" if v else "0" for v in inside) == code
    assert c[2, 1] < min(c[0, 1], c[1, 1])  # set 2 at the bottom


def test_venn_plot_degenerate_cases():
    empty = {k: 0 for k in venn.REGIONS}
    fig = plotting.plot_venn3(empty, ["a", "b", "c"], ["red", "green", "blue"], title="none")
    assert fig.axes[0].get_title() == "none"
    same = dict(empty, **{"111": 12})  # three identical sets
    fig = plotting.plot_venn3(same, ["a", "b", "c"], ["red", "green", "blue"])
    assert "12" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="three set labels"):
        plotting.plot_venn3(same, ["a"], ["red", "green", "blue"])


# --------------------------------------------------------------------------------- saliency


def test_minmax_and_diverging():
    x = np.array([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]])[..., None]
    out = saliency.minmax(x)
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out[0], [[0, 0.5], [0.25, 1]])
    np.testing.assert_allclose(out[1], 0.5)
    g = np.zeros((1, 10, 10, 3))
    g[0, 0, 0] = 100.0  # an outlier
    g[0, 1:, :, 0] = np.linspace(-1, 1, 90).reshape(9, 10)
    d = saliency.diverging(g, percentile=98)
    assert d.shape == (1, 10, 10) and d.max() == 1.0 and d.min() >= -1
    with pytest.raises(ValueError, match="percentile must be in"):
        saliency.diverging(g, percentile=0)


def _linear_model(w, b):
    import tensorflow as tf

    w = tf.constant(w, tf.float32)
    b = tf.constant(b, tf.float32)
    return lambda x: tf.matmul(tf.reshape(x, (tf.shape(x)[0], -1)), w) + b


def test_gradients_of_a_linear_softmax_model():
    """Closed forms: ∇x Σ_k log p_k = W (1 - K p) and ∇x mean CE = W (p - onehot) / n."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    x = rng.uniform(size=(5, 2, 2, 1)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    model = _linear_model(w, b)
    z = x.reshape(5, 4) @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = (1 - 3 * p) @ w.T
    np.testing.assert_allclose(saliency.sum_logp_gradients(model, x).reshape(5, 4), expected,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(saliency.log_probabilities(model, x), np.log(p), rtol=1e-4,
                               atol=1e-5)
    for offset in (0, 1):
        onehot = np.eye(3)[(y + offset) % 3]
        grad = (p - onehot) @ w.T / 5
        np.testing.assert_allclose(saliency.gradient_norms(model, x, y, label_offset=offset),
                                   np.linalg.norm(grad, axis=1), rtol=1e-4)
    # chunks of 2: the mean is over each chunk, so the last example's gradient is not /5
    norms = saliency.gradient_norms(model, x, y, batch_size=2)
    last = np.linalg.norm((p[4] - np.eye(3)[1]) @ w.T)
    assert norms[4] == pytest.approx(last, rel=1e-4)


def test_gradient_norm_floor():
    model = _linear_model(np.zeros((4, 3), np.float32), np.zeros(3, np.float32))
    x = np.zeros((2, 2, 2, 1), np.float32)
    np.testing.assert_array_equal(saliency.gradient_norms(model, x, [0, 1]), [1e-20, 1e-20])


@pytest.mark.parametrize("seeds, label", [((0,), "seed 0 only (no band yet)"),
                                          ((0, 1, 2), "range over seeds 0, 1, 2")])
def test_seed_band_legend_says_what_the_band_is(seeds, label):
    """The across-seed figure names its band (the range over seeds) and, with one seed, says
    there is none yet instead of labelling a band that is not drawn."""
    targets = ("normal", "doubleback")
    rng = np.random.default_rng(0)
    curves = {a: rng.uniform(size=(len(seeds), len(targets), len(PAPER_EPSILONS)))
              for a in ("FGSM", "TGSM")}
    fig = plotting.plot_seed_bands(PAPER_EPSILONS, curves, targets, seeds=seeds)
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert label in texts and sum("seed" in t for t in texts) == 1
