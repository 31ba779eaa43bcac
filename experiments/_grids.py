"""Shared part of the 10 x 10 target-grid figures (iterated TGSM and JSMA)."""

from __future__ import annotations

import time

import _common


def originals(ds, n_per_class: int):
    """The first ``n_per_class`` test images of each class, class-major (the original's ``Xta``),
    and their labels and test indices."""
    import numpy as np

    from gradreg_tf.data.base import first_of_each_class

    idx = np.concatenate([first_of_each_class(ds.y_test, ds.n_classes, offset=o)
                          for o in range(n_per_class)])
    idx = idx.reshape(n_per_class, ds.n_classes).T.ravel()  # class 0 x n, class 1 x n, ...
    return np.asarray(ds.x_test[idx]), np.asarray(ds.y_test[idx]), idx


def write_outputs(args, ds, name: str, *, images, predictions, success, p_target, classes,
                  title: str, subtitle: str, extra: dict, per_cell: dict | None = None):
    """Draws the per-model grids and writes PNG/PDF, CSV (one row per cell), NPZ and JSON.

    ``images[m]`` is ``(K, K, H, W, C)`` in data units (row = original class, column =
    target); ``predictions``/``success``/``p_target`` are ``(K, K)`` per model; ``per_cell``
    maps extra column names to ``{model: (K, K)}`` arrays.
    """
    import numpy as np

    from gradreg_tf import plotting, saliency

    shown = {m: saliency.minmax(v) for m, v in images.items()}
    fig = plotting.plot_target_grids(shown, [ds.class_names[c] for c in classes],
                                     success=success, title=title, subtitle=subtitle,
                                     caption=_common.budget_text(ds, args)
                                     + "; orange frame: the model does not predict the target")
    stem = _common.stem(args, ds, name)
    _common.save(fig, stem)
    rows = []
    for m in images:
        for i, orig in enumerate(classes):
            for j, targ in enumerate(classes):
                row = {"model": m, "original_class": int(orig), "target_class": int(targ),
                       "predicted": int(predictions[m][i, j]), "success": int(success[m][i, j]),
                       "p_target": float(p_target[m][i, j])}
                for col, values in (per_cell or {}).items():
                    row[col] = values[m][i, j]
                rows.append(row)
    _common.write_csv(stem.with_suffix(".csv"), rows)
    np.savez_compressed(stem.with_suffix(".npz"), classes=np.asarray(classes),
                        **{f"x_adv_{m}": v for m, v in images.items()})
    off = ~np.eye(len(classes), dtype=bool)
    rates = {m: float(np.mean(s[off])) for m, s in success.items()}
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, name + ".py", **extra),
        "success_rate_off_diagonal": rates})
    for m, r in rates.items():
        _common.log(f"{m:>12s}: reached the target in {100 * r:.0f}% of off-diagonal cells")
    return rows


class Timer:
    def __init__(self):
        self.start = time.time()

    def __call__(self) -> float:
        return round(time.time() - self.start, 1)
