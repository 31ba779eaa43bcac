"""The README's "use it in your own TF project" snippet runs as written."""

import os
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_readme_snippet_runs(tmp_path, data_dir, monkeypatch):
    text = (REPO / "README.md").read_text()
    marker = text.index("<!-- readme-snippet")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADREG_DATA_DIR", os.fspath(data_dir))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - running our own docs
    gr, model, x, y, x_adv = (namespace[k] for k in ("gr", "model", "x", "y", "x_adv"))
    x_adv = np.asarray(x_adv)
    # the saved file is the same model
    reloaded = keras.models.load_model(tmp_path / "doubleback.keras")
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
    # the FGSM images, recomputed with a plain tape: clip(x + 0.3 sign(grad of the mean CE))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y.astype("int32"), logits=model(xt, training=False)))
    grad = tape.gradient(ce, xt).numpy()
    np.testing.assert_allclose(x_adv, np.clip(x + 0.3 * np.sign(grad), 0, 1), atol=1e-6)
    # the printed accuracy and penalty, recomputed independently
    pred = np.argmax(model.predict(x, verbose=0), -1)
    assert gr.eval.grids.accuracy(model, x, y) == np.mean(pred == y)
    assert float(gr.penalties.double_backprop(model, x, y)) == pytest.approx(
        float(np.sum(grad.astype(np.float64) ** 2) / 2), rel=1e-4)
