"""Clean test accuracy of the five paper models, ours next to the published numbers.

    python experiments/clean_accuracy.py --dataset mnist [--budget reduced | --quick]

The notebooks print ``Accuracy: xx.xx%`` (and sklearn's macro F1) for every model on the
whole test set (SVHN: the first 4000 images), scored in chunks of 1000 (``score()``).
Macro F1: :func:`gradreg_tf.eval.metrics.macro_f1`. Writes ``<dataset>_clean_accuracy.csv`` and ``.md`` (dataset, model, accuracy, F1,
published accuracy and F1, difference in points, test images, budget) and ``.json``.
"""

from __future__ import annotations

import sys

import _common


def main(argv=None):
    args, ds, n = _common.test_set_run(__doc__.splitlines()[0], argv)

    import numpy as np

    from gradreg_tf import plotting, published
    from gradreg_tf.attacks import predict_labels
    from gradreg_tf.eval.metrics import macro_f1

    models = _common.paper_models(ds, args)
    paper = {r["model"]: r for r in published.load_clean_accuracy(dataset=ds.name)}
    y = np.asarray(ds.y_test[:n])
    rows = []
    for name, model in models.items():
        pred = predict_labels(model, ds.x_test[:n], batch_size=1000)
        acc = float(np.mean(pred == y))
        ref = paper.get(name, {})
        pub = ref.get("accuracy")
        rows.append({
            "dataset": ds.name, "model": name, "label": plotting.model_label(name),
            "accuracy": round(acc, 4), "f1_macro": round(macro_f1(y, pred, ds.n_classes), 4),
            "published_accuracy": pub, "published_f1_macro": ref.get("f1_macro"),
            "difference_points": None if pub is None else round(100 * (acc - pub), 2),
            "n_examples": n, "published_n_examples": ref.get("n_examples"),
            "budget": args.budget, "batches_per_model": _common.batches_per_model(ds, args),
        })
    stem = _common.stem(args, ds, "clean_accuracy")
    _common.write_csv(stem.with_suffix(".csv"), rows)
    table = [{**r, "label": plotting.model_text(r["model"]),
              "ours": f"{100 * r['accuracy']:.2f}",
              "paper": "" if r["published_accuracy"] is None
              else f"{100 * r['published_accuracy']:.2f}",
              "diff": "" if r["difference_points"] is None else f"{r['difference_points']:+.2f}"}
             for r in rows]
    md = (f"# Clean test accuracy on {_common.title(ds)} (%)\n\n"
          f"Ours: {_common.budget_text(ds, args)}, first {n} test images. "
          f"Paper: Ross & Doshi-Velez "
          f"(2018) notebooks, {rows[0]['published_n_examples']} test images.\n\n"
          + _common.markdown_table(table, [("label", "model"), ("ours", "ours"),
                                           ("paper", "paper"), ("diff", "ours − paper"),
                                           ("f1_macro", "ours macro F1")]))
    stem.with_suffix(".md").write_text(md)
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, n_test=n), "rows": rows})
    print(md)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
