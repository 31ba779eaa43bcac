"""Benchmark of gradreg_tf.attacks on the paper's MNIST CNN (issue 3).

Measures, on ``gradreg_tf.models.mnist_cnn()`` trained for one epoch (cached as
``$GRADREG_CACHE/bench/mnist_cnn_1epoch.keras``, default cache ``~/.cache/gradreg_tf``) and
the first MNIST test images:

* FGSM (eps=0.3) and iterated TGSM (10 steps of eps=0.1, targets (y+1) mod 10) in images/s on
  ``--n-images`` (1000) images;
* pairwise JSMA (theta=1, gamma=``--gamma`` (0.1), targets (y+1) mod 10) in ms/image on
  ``--n-jsma`` (100) images in one batch, its success rate, mean number of changed pixels and
  the peak resident memory (psutil RSS sampled every 2 ms) above the level before the call;
* L∞ PGD, 40 steps of 2.5·eps/40 from one random start (``gradreg_tf.attacks.pgd``), beside
  FGSM on the same ``--n-images`` images in the same run: the ratio PGD time / FGSM time (at
  most 45: each step is one gradient, like FGSM). At eps=0.3 most images are broken within a
  few steps and frozen; at eps=0.02 nearly every image runs all 40 steps, which is the
  per-step cost;
* ``strong`` (issue 24): on the shipped paper-schedule models (``--strong-models``, default
  advtrain and insensitive, :func:`gradreg_tf.pretrained.load`) and the first ``--n-strong``
  (200) test images at ``--strong-eps`` (0.1): our APGD-DLR (100 steps, 1 restart) and Square
  (1000 queries, p_init 0.8) beside ART's ``AutoProjectedGradientDescent`` (DLR loss, 100
  iterations, 1 random init, initial step 2·eps) and ``SquareAttack`` (1000 iterations,
  p_init 0.8, 1 restart): wall time and robust accuracy of each (one timed run each: these
  attacks take minutes, not milliseconds); and, on the same images, the robustness audit's
  per-image worst case over all its attacks (:meth:`gradreg_tf.audit.AuditResult.worst_case`
  on the first ``--n-strong`` images of ``--audit-per-example``, default
  ``figures/mnist_robustness_audit_paper.per_example.npz`` written by
  ``experiments/robustness_audit.py``, checked against the models' clean predictions; if that
  file is missing or does not cover the images and eps, the audit is run here on the
  ``--strong-models`` only, without transfer from the other paper models), which issue 24
  requires to be at most ART's APGD-DLR accuracy + 0.01;
* if ART (adversarial-robustness-toolbox) is importable, ART's FastGradientMethod,
  SaliencyMapMethod and ProjectedGradientDescent on the same model and images; if cleverhans
  (v4) is importable, its ``tf2`` projected_gradient_descent; with the ratios. Neither is ever
  a dependency of gradreg_tf.

Times are the median of ``--repeats`` runs after one warm-up run (tracing excluded).

Usage::

    python bench/attacks.py [--n-images 1000] [--n-jsma 100] [--gamma 0.1] [--no-art]
                            [--parts fgsm,tgsm,jsma,pgd,strong] [--repeats 3]
                            [--strong-models advtrain,insensitive] [--n-strong 200]
                            [--strong-eps 0.1] [--audit-per-example PATH] [--no-square]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from gradreg_tf import data  # noqa: E402
from gradreg_tf.attacks import apgd, fgsm, jsma, pgd, predict_labels, square, tgsm  # noqa: E402
from gradreg_tf.models import mnist_cnn  # noqa: E402


def cache_dir() -> pathlib.Path:
    root = os.environ.get("GRADREG_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "gradreg_tf")
    path = pathlib.Path(root) / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_model(mnist) -> keras.Model:
    """The cached 1-epoch MNIST CNN, trained (about a minute on 2 cores) if missing."""
    path = cache_dir() / "mnist_cnn_1epoch.keras"
    if path.exists():
        print(f"model: loading {path}")
        return keras.saving.load_model(path)
    print(f"model: training mnist_cnn() for 1 epoch (no cache at {path})")
    keras.utils.set_random_seed(0)
    model = mnist_cnn()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(mnist.x_train, mnist.y_train, batch_size=256, epochs=1, verbose=2)
    model.save(path)
    return model


CPU_TIMES: dict = {}  # label -> median process CPU seconds of the last timed() call


def timed(fn, repeats: int, label: str = ""):
    """(result of the last run, median wall seconds) after one warm-up run.

    The median process CPU time (all threads) is kept in ``CPU_TIMES[label]``: on a shared
    machine it is the steadier number.
    """
    result = fn()
    times, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    CPU_TIMES[label] = float(np.median(cpus))
    return result, float(np.median(times))


class PeakRSS:
    """Peak resident set size above the level at entry, sampled in a thread (TF allocations
    are invisible to tracemalloc, and get_memory_info('CPU:0') reports zeros)."""

    def __init__(self, interval: float = 0.002):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self):
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def above_base_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _art_classifier(model, classifier_cls):
    """ART's wrapper of the bench model (10 classes, 28x28x1 in [0, 1], logits)."""
    return classifier_cls(
        model=model, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
        loss_object=keras.losses.CategoricalCrossentropy(from_logits=True))


def art_runs(model, x, y, xj, tj, gamma, repeats, *, with_jsma=True):
    """ART's FGSM and (``with_jsma``) JSMA (SaliencyMapMethod) on the same model/images, or
    None."""
    try:
        from art.attacks.evasion import FastGradientMethod, SaliencyMapMethod
        from art.estimators.classification import TensorFlowV2Classifier
    except ImportError:
        return None
    clf = _art_classifier(model, TensorFlowV2Classifier)
    onehot = np.eye(10, dtype=np.float32)
    out = {}
    fgm = FastGradientMethod(clf, eps=0.3, batch_size=len(x))
    adv, sec = timed(lambda: fgm.generate(x, y=onehot[y]), repeats, "art_fgsm")
    out["fgsm"] = (len(x) / sec, float(np.mean(predict_labels(model, adv) == y)))
    if not with_jsma:
        return out
    smm = SaliencyMapMethod(clf, theta=1.0, gamma=gamma, batch_size=len(xj), verbose=False)
    adv, sec = timed(lambda: smm.generate(xj, y=onehot[tj]), max(1, repeats // 3), "art_jsma")
    changed = np.sum((adv != xj).reshape(len(xj), -1), axis=1)
    out["jsma"] = (1000 * sec / len(xj), float(np.mean(predict_labels(model, adv) == tj)),
                   float(np.mean(changed)))
    return out


PARTS = ("fgsm", "tgsm", "jsma", "pgd", "strong")
PGD_STEPS = 40
PGD_EPS = (0.3, 0.02)  # most images frozen early / nearly all run every step
PGD_MAX_RATIO = 45.0


def art_pgd(model, x, y, eps, repeats):
    """ART's ProjectedGradientDescent (40 steps of 2.5 eps/40, one random start), or None."""
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import TensorFlowV2Classifier
    except ImportError:
        return None
    clf = _art_classifier(model, TensorFlowV2Classifier)
    attack = ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2.5 * eps / PGD_STEPS,
                                      max_iter=PGD_STEPS, num_random_init=1,
                                      batch_size=len(x), verbose=False)
    onehot = np.eye(10, dtype=np.float32)[y]
    return timed(lambda: attack.generate(x, y=onehot), repeats, f"art_pgd_{eps}")


def cleverhans_pgd(model, x, y, eps, repeats):
    """cleverhans v4 ``tf2`` projected_gradient_descent with the same settings, or None."""
    try:
        from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent
    except ImportError:
        return None
    xt, yt = tf.constant(x), tf.constant(y)

    def run():
        return projected_gradient_descent(
            model, xt, eps, 2.5 * eps / PGD_STEPS, PGD_STEPS, np.inf, clip_min=0.0,
            clip_max=1.0, y=yt, rand_init=True, sanity_checks=False).numpy()

    return timed(run, repeats, f"cleverhans_pgd_{eps}")


def pgd_rows(model, x, y, bounds, fgsm_sec, repeats, *, others: bool):
    """PGD rows: ours at each of PGD_EPS (ratio to FGSM), then ART / cleverhans if present."""
    rows, ours = [], {}
    for eps in PGD_EPS:
        adv, sec = timed(lambda: pgd(model, x, eps, bounds=bounds, y=y, steps=PGD_STEPS),
                         repeats, f"pgd_{eps}")
        ours[eps] = sec
        ratio, cpu_ratio = sec / fgsm_sec, CPU_TIMES[f"pgd_{eps}"] / CPU_TIMES["fgsm"]
        verdict = "ok" if ratio <= PGD_MAX_RATIO else "OVER"
        rows.append((f"PGD {PGD_STEPS} x 2.5eps/{PGD_STEPS} eps={eps:g}",
                     f"{len(x) / sec:,.0f} images/s", cpu_ms(f"pgd_{eps}", len(x)),
                     f"accuracy {np.mean(predict_labels(model, adv) == y):.3f}",
                     f"x{ratio:.1f} FGSM wall, x{cpu_ratio:.1f} CPU (<= {PGD_MAX_RATIO:g}: "
                     f"{verdict})"))
    if not others:
        return rows
    for name, runner in (("ART", art_pgd), ("cleverhans", cleverhans_pgd)):
        for eps in PGD_EPS:
            out = runner(model, x, y, eps, repeats)
            if out is None:
                rows.append((f"{name} PGD", "not installed", "", "", ""))
                break
            adv, sec = out
            label = f"{'art' if name == 'ART' else 'cleverhans'}_pgd_{eps}"
            rows.append((f"{name} PGD {PGD_STEPS} steps eps={eps:g}",
                         f"{len(x) / sec:,.0f} images/s", cpu_ms(label, len(x)),
                         f"accuracy {np.mean(predict_labels(model, adv) == y):.3f}",
                         f"gradreg_tf x{sec / ours[eps]:.1f} faster (CPU "
                         f"x{CPU_TIMES[label] / CPU_TIMES[f'pgd_{eps}']:.1f})"))
    return rows


def cpu_ms(label, n):
    return f"{1000 * CPU_TIMES[label] / n:.2f} ms/image"


def _once(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


AUDIT_PER_EXAMPLE = (pathlib.Path(__file__).resolve().parents[1] / "figures"
                     / "mnist_robustness_audit_paper.per_example.npz")


def audit_worst_case(models: dict, x, y, eps, bounds, path) -> tuple[dict, str, float | None]:
    """The audit's per-image worst-case accuracy at ``eps`` of each of ``models`` on ``x``:
    ``({name: accuracy}, source, seconds or None)``.

    From the per-example file ``path`` (a full audit of the paper models on at least
    ``len(x)`` first test images, :func:`gradreg_tf.audit.load_per_example`) when it covers
    the models and ``eps`` and its clean results equal the models' on ``x``; else the audit is
    run here on ``models`` alone at eps (0, ``eps``) with its default (paper) settings.
    """
    try:
        from gradreg_tf.eval import audit
    except ImportError:  # before the move to the eval package
        from gradreg_tf import audit

    n = len(x)
    why = f"{path} missing"
    if path is not None and pathlib.Path(path).is_file():
        epsilons, clean, correct = audit.load_per_example(path)
        stored = audit.AuditResult(rows=(), diagnostics={}, epsilons=epsilons, settings={},
                                   seconds={}, correct=correct, clean=clean)
        near = [i for i, e in enumerate(epsilons) if abs(e - eps) < 1e-9]
        ours = {name: predict_labels(m, x) == y for name, m in models.items()}
        if not near:
            why = f"{path} has no eps {eps:g}"
        elif len(next(iter(clean.values()))) < n:
            why = f"{path} covers {len(next(iter(clean.values())))} < {n} images"
        elif any(name not in clean or not np.array_equal(clean[name][:n], ours[name])
                 for name in models):
            why = f"{path} does not match these models' clean predictions"
        else:
            return ({name: float(stored.worst_case(name, rows=np.arange(n))[near[0]])
                     for name in models},
                    f"{pathlib.Path(path).name}, all {len(clean)} models' attacks and transfer",
                    None)
    print(f"audit worst case: {why}; running the audit on {', '.join(models)} here")
    start = time.perf_counter()
    result = audit.robustness_audit(models, x, y, bounds=bounds, epsilons=(0.0, eps))
    seconds = time.perf_counter() - start
    return ({name: float(result.worst_case(name)[1]) for name in models},
            f"audit of {', '.join(models)} only (no transfer from the other paper models)",
            seconds)


def strong_rows(names, n, eps, *, others: bool, per_example=AUDIT_PER_EXAMPLE,
                with_square: bool = True) -> list[tuple]:
    """APGD-DLR and Square, ours vs ART's, and the audit's worst case, on shipped models
    (module docstring)."""
    from gradreg_tf import pretrained

    mnist = data.load("mnist")
    x, y = mnist.x_test[:n], mnist.y_test[:n].astype(np.int64)
    models = {name: pretrained.load("mnist", name) for name in names}
    rows, art_apgd_acc = [], {}
    for name in names:
        model = models[name]
        acc = lambda adv: float(np.mean(predict_labels(model, adv) == y))  # noqa: E731
        apgd(model, x[:2], eps, bounds=mnist.bounds, y=y[:2], loss="dlr", steps=2)  # trace
        square(model, x[:2], eps, bounds=mnist.bounds, y=y[:2], queries=2)
        ours = {}
        adv, sec = _once(lambda: apgd(model, x, eps, bounds=mnist.bounds, y=y, loss="dlr",
                                      steps=100, restarts=1).numpy())
        ours["apgd"] = (sec, acc(adv))
        if with_square:
            adv, sec = _once(lambda: square(model, x, eps, bounds=mnist.bounds, y=y,
                                            queries=1000, p_init=0.8).numpy())
            ours["square"] = (sec, acc(adv))
        clean = acc(x)
        rows.append((f"{name}: clean", "", "", f"accuracy {clean:.3f}", ""))
        rows.append((f"{name}: APGD-DLR eps={eps:g} (ours)", f"{ours['apgd'][0]:.1f} s", "",
                     f"accuracy {ours['apgd'][1]:.3f}", ""))
        if with_square:
            rows.append((f"{name}: Square eps={eps:g} 1000 q (ours)",
                         f"{ours['square'][0]:.1f} s", "", f"accuracy {ours['square'][1]:.3f}", ""))
        if not others:
            continue
        try:
            from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
            from art.estimators.classification import TensorFlowV2Classifier
        except ImportError:
            rows.append(("ART", "not installed", "", "", ""))
            continue
        clf = _art_classifier(model, TensorFlowV2Classifier)
        onehot = np.eye(10, dtype=np.float32)[y]
        art_apgd = AutoProjectedGradientDescent(
            clf, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, targeted=False,
            nb_random_init=1, batch_size=len(x), loss_type="difference_logits_ratio",
            verbose=False)
        adv, sec = _once(lambda: art_apgd.generate(x, y=onehot))
        a = art_apgd_acc[name] = acc(adv)
        rows.append((f"{name}: ART APGD-DLR eps={eps:g}", f"{sec:.1f} s", "", f"accuracy {a:.3f}",
                     f"ours {'<=' if ours['apgd'][1] <= a + 0.01 else '>'} ART+0.01; ours "
                     f"x{sec / ours['apgd'][0]:.1f} faster"))
        if not with_square:
            continue
        art_square = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=1000, p_init=0.8,
                                  nb_restarts=1, batch_size=len(x), verbose=False)
        adv, sec = _once(lambda: art_square.generate(x, y=onehot))
        a = acc(adv)
        rows.append((f"{name}: ART Square eps={eps:g} 1000 it", f"{sec:.1f} s", "",
                     f"accuracy {a:.3f}",
                     f"ours {'<=' if ours['square'][1] <= a + 0.01 else '>'} ART+0.01; ours "
                     f"x{sec / ours['square'][0]:.1f} faster"))
    # read (or run) last: a full audit writing the per-example file may run beside the attacks
    worst, worst_source, worst_sec = audit_worst_case(models, x, y, eps, mnist.bounds,
                                                      per_example)
    for name in names:
        versus = ("" if name not in art_apgd_acc else
                  f"{'<=' if worst[name] <= art_apgd_acc[name] + 0.01 else '>'} ART APGD-DLR+0.01; ")
        rows.append((f"{name}: audit worst case eps={eps:g}",
                     "" if worst_sec is None else f"{worst_sec:.1f} s (these models)", "",
                     f"accuracy {worst[name]:.3f}", versus + worst_source))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--n-jsma", type=int, default=100)
    parser.add_argument("--gamma", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-art", action="store_true",
                        help="skip the ART and cleverhans comparisons")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)} (FGSM always runs: "
                             "it is the unit of the PGD ratio)")
    parser.add_argument("--strong-models", default="advtrain,insensitive",
                        help="shipped MNIST models for the strong part")
    parser.add_argument("--n-strong", type=int, default=200,
                        help="first N test images for the strong part")
    parser.add_argument("--strong-eps", type=float, default=0.1)
    parser.add_argument("--no-square", action="store_true",
                        help="strong part: APGD-DLR and the audit's worst case only (Square, ours "
                             "and ART's, take most of its time)")
    parser.add_argument("--audit-per-example", type=pathlib.Path, default=AUDIT_PER_EXAMPLE,
                        help="per-example results of a full audit (robustness_audit.py) for "
                             "the strong part's audit worst case; if missing or not covering "
                             "the images, the audit runs on --strong-models here")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= set(PARTS):
        parser.error(f"--parts: unknown {sorted(parts - set(PARTS))}; choose from "
                     f"{', '.join(PARTS)}")
    strong_names = [m.strip() for m in args.strong_models.split(",") if m.strip()]
    if not strong_names or not (0 < args.strong_eps < 1):
        parser.error(f"--strong-models must name shipped models and --strong-eps be in (0, 1), "
                     f"received {args.strong_models!r}, {args.strong_eps!r}")
    for option in ("n_images", "n_jsma", "repeats", "n_strong"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1, received "
                         f"{getattr(args, option)}")

    if parts == {"strong"}:  # the shipped models only: no bench CNN, no FGSM
        rows = strong_rows(strong_names, args.n_strong, args.strong_eps, others=not args.no_art,
                           per_example=args.audit_per_example, with_square=not args.no_square)
        _print_table(rows, f"shipped MNIST models {', '.join(strong_names)}, first "
                           f"{args.n_strong} test images, eps {args.strong_eps:g}; one run each")
        return 0

    mnist = data.load("mnist")
    model = get_model(mnist)
    bounds = mnist.bounds
    x, y = mnist.x_test[: args.n_images], mnist.y_test[: args.n_images].astype(np.int64)
    xj, yj = x[: args.n_jsma], y[: args.n_jsma]
    tj = (yj + 1) % 10
    clean = float(np.mean(predict_labels(model, x) == y))
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} CPU cores; "
          f"clean accuracy on {len(x)} test images: {clean:.4f}")

    rows = []
    adv, fgsm_sec = timed(lambda: fgsm(model, x, 0.3, bounds=bounds, y=y), args.repeats, "fgsm")
    fgsm_rate = len(x) / fgsm_sec
    rows.append(("FGSM eps=0.3", f"{fgsm_rate:,.0f} images/s", cpu_ms("fgsm", len(x)),
                 f"accuracy {np.mean(predict_labels(model, adv) == y):.3f}", ">= 2000 images/s"))

    if "tgsm" in parts:
        t_all = (y + 1) % 10
        adv, sec = timed(lambda: tgsm(model, x, 0.1, bounds=bounds, y_target=t_all, steps=10),
                         args.repeats, "tgsm")
        rows.append(("iterated TGSM 10 x eps=0.1", f"{len(x) / sec:,.0f} images/s",
                     cpu_ms("tgsm", len(x)),
                     f"target rate {np.mean(predict_labels(model, adv) == t_all):.3f}",
                     ">= 220 images/s"))

    if "jsma" in parts:
        jsma(model, xj[:2], y_target=tj[:2], bounds=bounds, gamma=args.gamma)  # trace
        times, cpus, peaks = [], [], []
        for _ in range(max(1, args.repeats)):
            with PeakRSS() as mem:
                start, cpu = time.perf_counter(), time.process_time()
                res = jsma(model, xj, y_target=tj, bounds=bounds, gamma=args.gamma,
                           batch_size=len(xj))
                times.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
            peaks.append(mem.above_base_mb)
        CPU_TIMES["jsma"] = float(np.median(cpus))
        jsma_ms = 1000 * float(np.median(times)) / len(xj)
        success = float(np.mean(res.success.numpy()))
        mean_changed = float(np.mean(res.n_changed.numpy()))
        rows.append((f"JSMA pairwise gamma={args.gamma:g} theta=1", f"{jsma_ms:.1f} ms/image",
                     cpu_ms("jsma", len(xj)),
                     f"success {success:.2f}, {mean_changed:.1f} px changed",
                     "<= 30 ms/image"))
        naive_mb = len(xj) * 784 * 784 * 4 / 2**20
        rows.append((f"JSMA peak RSS, batch {len(xj)}", f"+{max(peaks):.0f} MB", "",
                     f"(one naive B x N x N float32 tensor: {naive_mb:.0f} MB)", ""))

    if "pgd" in parts:
        rows += pgd_rows(model, x, y, bounds, fgsm_sec, args.repeats,
                         others=not args.no_art)

    if "strong" in parts:
        rows += strong_rows(strong_names, args.n_strong, args.strong_eps,
                            others=not args.no_art, per_example=args.audit_per_example)

    art = None if args.no_art else art_runs(model, x, y, xj, tj, args.gamma, args.repeats,
                                            with_jsma="jsma" in parts)
    if art is not None:
        import art as art_pkg

        rate, acc = art["fgsm"]
        rows.append((f"ART {art_pkg.__version__} FGSM eps=0.3", f"{rate:,.0f} images/s",
                     cpu_ms("art_fgsm", len(x)),
                     f"accuracy {acc:.3f}", f"gradreg_tf x{fgsm_rate / rate:.1f} faster"))
        if "jsma" in art:
            ms, succ, changed = art["jsma"]
            rows.append((f"ART SaliencyMapMethod gamma={args.gamma:g}", f"{ms:.1f} ms/image",
                         cpu_ms("art_jsma", len(xj)),
                         f"success {succ:.2f}, {changed:.1f} px changed",
                         f"gradreg_tf x{ms / jsma_ms:.1f} faster"))
    elif not args.no_art:
        rows.append(("ART", "not installed", "", "", ""))

    _print_table(rows, f"MNIST CNN (1 epoch), {len(x)} test images ({len(xj)} for JSMA); "
                       f"median of {args.repeats} runs")
    return 0


def _print_table(rows, title: str) -> None:
    header = ("attack", "speed (wall)", "CPU time", "result", "target / ratio (wall)")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    print()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{title}; {os.cpu_count()} CPU cores, load average {load} at the end")
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")


if __name__ == "__main__":
    sys.exit(main())
