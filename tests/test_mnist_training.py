"""Real-data check: double backprop at the paper's MNIST λ learns (issue: 200 batches >= 95%)."""

import keras
import numpy as np

import gradreg_tf as g


def test_double_backprop_at_paper_lambda_learns_mnist(data_dir):
    ds = g.data.load("mnist", data_dir=data_dir)
    model = g.GradRegClassifier(g.models.mnist_cnn(), penalty="double_backprop",
                                penalty_weight=g.recipes.PAPER_LAMBDA["mnist"]["doubleback"])
    model.compile(optimizer=keras.optimizers.Adam(2e-4, epsilon=1e-4))
    n = 200 * 256
    hist = model.fit(ds.x_train[:n], ds.y_train[:n], batch_size=256, epochs=1, shuffle=False,
                     verbose=0)
    assert np.isfinite(hist.history["loss"][0]) and hist.history["penalty"][0] > 0
    acc = g.eval.grids.accuracy(model, ds.x_test, ds.y_test)
    assert acc >= 0.95, f"test accuracy {acc:.4f} after 200 batches"
