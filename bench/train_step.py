"""Benchmark of one training step of GradRegClassifier through ``model.fit`` (issue 7).

On the paper's MNIST CNN (``gradreg_tf.models.mnist_cnn``) at batch 256, in one process,
times the five objectives users train, each built and compiled exactly as
``training.train_recipe`` does (``recipes.paper_recipe("mnist", ...)``: Adam 2e-4/1e-4) and
fed by the same prefetching ``tf.data`` pipeline of sequential MNIST batches:

    plain            mean cross-entropy                         (recipe "normal")
    double_backprop  + λ l2_loss(∇x CE), λ = 10**4.75 = 56234.13  ("doubleback")
    insensitive      + λ l2_loss(∇x CE(1/K)), λ = 1000            ("insensitive")
    advtrain         (CE + CE(FGSM ε=0.3, bounds (0, 1))) / 2     ("advtrain")
    combined         double backprop + adversarial training      ("both")

Method: every model runs ``--warmup`` untimed steps first (tracing); then ``--rounds``
rounds, each fitting every model for ``--steps-per-round`` steps in a rotated order, so that
load changes on a shared machine hit all rows alike. A callback stamps the wall clock and the
process CPU time at the end of every batch (``fit`` runs each step synchronously); the
first step of every ``fit`` call (iterator start-up) is dropped. Reported per row: median
wall ms/step, examples/s, the median over rounds of the per-round ratio to ``plain`` (with
its inter-quartile range), CPU ms/step and its ratio (robust to other processes taking the
cores: use this ratio on a busy machine), the step's memory (peak of TensorFlow's CPU
allocator during the row's steps minus what was allocated before them, from
``tf.config.experimental.get_memory_info``; the process RSS high-water mark, ``ru_maxrss``,
is printed below the table), the number of traces of the step function, and
the input-pipeline share: seconds per batch to iterate the pipeline alone over seconds per
step (the pipeline prefetches, so in ``fit`` it overlaps the step anyway).
``--breakdown`` profiles 10 steps of plain and double backprop with ``tf.profiler`` and
prints the op time by (forward / 1st- / 2nd-order gradient, layer, op); every op counts its
fastest occurrence, which filters out preemption.

Usage::

    python bench/train_step.py [--rounds 8] [--steps-per-round 8] [--breakdown]
        [--xla plain,double_backprop] [--inter-op-threads N] [--intra-op-threads N] [--out r.json]

Findings (AMD EPYC, 2 cores shared with other jobs, TF 2.21 with oneDNN, Keras 3.15)
-----------------------------------------------------------------------------------
``python bench/train_step.py`` with one other training job on the machine (load ~3.5)::

    step             ms/step  ex/s x plain       (IQR)  CPU ms x plain  MiB traces input%
    plain              145.9  1755    1.00 (1.00-1.00)   146.4    1.00  175      1   0.17
    double_backprop    351.4   728    2.40 (2.37-2.42)   348.6    2.41  426      1   0.07
    insensitive        347.5   737    2.35 (2.33-2.44)   346.2    2.37  423      1   0.07
    advtrain           364.1   703    2.52 (2.43-2.56)   363.3    2.50  277      1   0.07
    combined           568.6   450    3.90 (3.83-3.99)   564.1    3.88  502      1   0.04
    input pipeline alone: 0.24 ms/batch; process peak RSS (ru_maxrss) 2321 MiB

The double-backprop step costs **2.4x** the plain step in CPU time (2.37-2.44 in every run;
the wall-clock ratio agreed at this load and moved between 2.2 and 4 at load 6-8). The goal of
<= 2.0x is **not met on this CPU**; the issue's "2.1-2.5x" for the straightforward
nested-tape step is what we measure too, and nothing in the step itself was left to cut:

* Where the time goes (``--breakdown`` single-threaded, ms of op time per step, plain ->
  double backprop; totals 136 -> 317, i.e. 2.33x):

  - convolutions and matmuls of conv2/fc1/logits: 86 -> 159 (1.85x). Reverse-over-reverse
    is at its floor here: a plain step runs 3 convolutions per layer (forward, ∂W, ∂x),
    double backprop 6 (forward; the inner ∂x; ∂W and ∂x of the forward for the summed
    gradient; a forward convolution and a ∂W for the derivative of the inner ∂x).
  - ∂x through the first convolution (the input gradient itself, 32 -> 1 channels):
    22 ms, new. oneDNN's Conv2DBackpropInput with one output channel runs 6-8x slower than
    the forward convolution of the same FLOPs (3 ms). Rewriting it as a forward convolution
    with the transposed filter measured the same (22 ms); as a depthwise convolution plus a
    channel sum 8 ms, but its own gradient then costs 10 ms instead of 3 (net -7 ms).
  - MaxPoolGradGrad (the derivative of the max-pool gradient; an Eigen kernel, no oneDNN
    version): 22 ms for both pooling layers, new. For the first layer alone it takes 20 ms;
    an argmax + gather formulation measured 31 ms, a mask formulation 27 ms (vs 23 ms,
    both with the forward pooling).
  - batch norm: Keras' BatchNormalization is ~5 elementwise ops on the activation; TF
    differentiates each separately, twice (broadcasts, divisions and reductions on
    256x28x28x32 tensors): 28 -> 69 ms, +13 ms beyond 2x.
  - gradient sums (AddN) 2 -> 12 ms, other elementwise 9 -> 14 ms.

  Without the first-layer ∂x and MaxPoolGradGrad kernels the step would be 2.0x; both are
  TensorFlow/oneDNN kernel costs, and replacing them needs op-level gradient overrides
  (``tf.gradients`` with ``gradient_override_map``; ``GradientTape`` ignores overrides), for
  at most -7 ms measured: not done.
* Avoidable work checked: the forward pass runs once and the forward ops are differentiated
  once (the CE and penalty paths meet in AddN); no float64 op in any of the five step
  graphs; the inner tape is ``persistent`` only in the combined step, where two gradients
  are taken from it (in a traced step persistence costs nothing at run time anyway). Host
  round trips: ``fit`` calls the traced step once per batch and ``train_recipe``'s NaN
  guard reads that batch's loss, as it must. **Retracing**: the step was traced twice at
  the first ``fit``, because Adam's slot variables were created inside the first trace;
  ``training.compile_model`` now builds the optimizer first, so every row traces once
  (one trace, 1-3 s, saved at start-up; not per step). Under ``tf.distribute`` the four
  metric all-reduces of a step became one.
* XLA (``--xla``, ``compile(jit_compile=True)``): it fuses batch norm's elementwise chains, so
  double backprop costs only 1.8x plain *under XLA*, but XLA:CPU's convolutions are slower
  than oneDNN's: plain 2.2x and double backprop 1.7x slower than without XLA. Keras'
  default (``jit_compile="auto"``) disables XLA on CPU-only machines, and the default path
  stays as it is; on a GPU, ``model.compile(jit_compile=True)`` is worth measuring.
* Threads: 1 inter-op / 1 intra-op thread instead of TensorFlow's defaults leaves the ratio at
  2.38-2.44. ``TF_ENABLE_ONEDNN_OPTS=0`` makes the plain step ~4x slower.
* The other rows (CPU-time ratios): insensitive 2.4x (the same nested-tape structure as
  double backprop), advtrain 2.5x (∂x for FGSM plus a second forward/backward on the
  adversarial batch), combined 3.9x (both).
* Input pipeline: 0.2-0.5 ms per batch alone, < 0.5% of any step (goal < 5%).
* Memory (allocator peak during a step above what was allocated before it): ~160-170 MiB
  for plain, ~380-430 MiB for double backprop and insensitive (the second-order graph
  keeps the first backward pass's intermediates), ~290 MiB for advtrain, ~500 MiB
  combined; the process peaks at ~2.2-2.3 GiB RSS with five models and MNIST loaded.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import pathlib
import platform
import re
import resource
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from gradreg_tf import data, recipes, training  # noqa: E402

# (row label, paper recipe): what each row trains, with the paper's MNIST λ / ε.
STEPS = (
    ("plain", "normal"),                 # mean cross-entropy
    ("double_backprop", "doubleback"),   # + λ l2_loss(∇x CE), λ = 10**4.75 = 56234.13
    ("insensitive", "insensitive"),      # + λ l2_loss(∇x CE(1/K)), λ = 1000
    ("advtrain", "advtrain"),            # (CE + CE(FGSM ε=0.3, bounds (0, 1))) / 2
    ("combined", "both"),                # double backprop + adversarial training
)


class _StepClock(keras.callbacks.Callback):
    """Wall and process-CPU time at the end of every batch (fit runs each step synchronously)."""

    def __init__(self):
        super().__init__()
        self.wall, self.cpu = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())


def _reset_peak_memory() -> float:
    """Resets the CPU allocator's peak; returns the bytes in use now (NaN if unsupported)."""
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        return float(tf.config.experimental.get_memory_info("CPU:0")["current"])
    except ValueError:  # allocator without statistics (e.g. TF_ENABLE_ONEDNN_OPTS=0)
        return float("nan")


def _peak_memory() -> float:
    try:
        return float(tf.config.experimental.get_memory_info("CPU:0")["peak"])
    except ValueError:
        return float("nan")


def build(model_name: str, mnist, *, jit_compile="auto"):
    """The recipe's model and optimizer exactly as ``training.train_recipe`` builds them."""
    recipe = recipes.paper_recipe("mnist", model_name)
    keras.utils.set_random_seed(0)
    model = training.build_model(recipe, input_shape=mnist.x_train.shape[1:], bounds=mnist.bounds)
    training.compile_model(model, recipe)
    if jit_compile != "auto":  # same optimizer, XLA on or off
        model.compile(optimizer=model.optimizer, jit_compile=jit_compile)
    traces = [0]
    step = model.train_step

    def counted_step(batch):  # runs in Python once per trace of the step function
        traces[0] += 1
        return step(batch)

    model.train_step = counted_step
    return model, traces


def input_pipeline_seconds(x, y, *, batch_size: int, n: int) -> float:
    """Seconds per batch to iterate the training pipeline alone (the one ``train_recipe`` uses)."""
    it = iter(training.batches(x, y, batch_size=batch_size, epochs=1000))
    for _ in range(5):
        next(it)
    start = time.perf_counter()
    for _ in range(n):
        next(it)
    return (time.perf_counter() - start) / n


def run(args) -> dict:
    mnist = data.load("mnist", data_dir=args.data_dir)
    x, y = mnist.x_train, mnist.y_train
    rows = [(label, name, "auto") for label, name in STEPS if label in args.steps]
    rows += [(f"{label}+xla", name, True) for label, name in STEPS if label in args.xla]
    built = {label: build(name, mnist, jit_compile=jit) for label, name, jit in rows}
    models = {label: m for label, (m, _) in built.items()}

    ds = training.batches(x, y, batch_size=args.batch_size, epochs=10_000)  # one copy of x

    def fit(model, steps, callbacks=()):
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
                  callbacks=list(callbacks))

    t0 = time.perf_counter()
    for model in models.values():  # tracing and the first steps are not timed
        fit(model, args.warmup)
    warmup_s = time.perf_counter() - t0
    wall = {label: [] for label in models}
    cpu = {label: [] for label in models}
    round_wall = {label: [] for label in models}
    round_cpu = {label: [] for label in models}
    peaks = {label: 0.0 for label in models}
    order = list(models)
    for r in range(args.rounds):
        for label in order[r % len(order):] + order[:r % len(order)]:  # rotated: cancels drift
            clock = _StepClock()
            in_use = _reset_peak_memory()
            fit(models[label], args.steps_per_round + 1, [clock])
            peaks[label] = max(peaks[label], _peak_memory() - in_use)
            dw, dc = np.diff(clock.wall), np.diff(clock.cpu)  # drops the iterator start-up step
            wall[label] += dw.tolist()
            cpu[label] += dc.tolist()
            round_wall[label].append(float(np.median(dw)))
            round_cpu[label].append(float(np.median(dc)))
    base = "plain" if "plain" in models else order[0]
    t_input = input_pipeline_seconds(x, y, batch_size=args.batch_size, n=args.input_batches)
    result = {"machine": machine(args), "batch_size": args.batch_size, "rounds": args.rounds,
              "steps_per_round": args.steps_per_round, "warmup_seconds": round(warmup_s, 1),
              "input_ms_per_batch": 1e3 * t_input, "process_peak_rss_mib": _maxrss_mib(),
              "steps": {}}
    for label in models:
        med = float(np.median(wall[label]))
        ratios = np.array(round_wall[label]) / np.array(round_wall[base])
        cpu_ratios = np.array(round_cpu[label]) / np.array(round_cpu[base])
        result["steps"][label] = {
            "wall_ms": 1e3 * med,
            "examples_per_s": args.batch_size / med,
            "ratio": float(np.median(ratios)),
            "ratio_iqr": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
            "cpu_ms": 1e3 * float(np.median(cpu[label])),
            "cpu_ratio": float(np.median(cpu_ratios)),
            "step_memory_mib": peaks[label] / 2**20,
            "traces": built[label][1][0],
            "input_share": t_input / med,
        }
    return result


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def machine(args=None) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "load_average": [round(v, 2) for v in os.getloadavg()]}
    if args is not None:
        info["inter_op_threads"] = args.inter_op_threads or "default"
        info["intra_op_threads"] = args.intra_op_threads or "default"
    return info


def table(result) -> str:
    m = result["machine"]
    lines = [f"MNIST CNN (gradreg_tf.models.mnist_cnn), batch {result['batch_size']}, model.fit; "
             f"{m['cpu']}, {m['cores']} cores, TF {m['tensorflow']}, Keras {m['keras']}",
             f"median of {result['rounds']} interleaved rounds x {result['steps_per_round']} "
             f"steps; load average at the end {m['load_average']}",
             f"{'step':<16s}{'ms/step':>8s}{'ex/s':>6s}{'x plain':>8s}{'(IQR)':>12s}"
             f"{'CPU ms':>8s}{'x plain':>8s}{'MiB':>5s}{'traces':>7s}{'input%':>7s}"]
    for label, s in result["steps"].items():
        lo, hi = s["ratio_iqr"]
        lines.append(f"{label:<16s}{s['wall_ms']:8.1f}{s['examples_per_s']:6.0f}{s['ratio']:8.2f}"
                     f"{f'({lo:.2f}-{hi:.2f})':>12s}{s['cpu_ms']:8.1f}{s['cpu_ratio']:8.2f}"
                     f"{s['step_memory_mib']:5.0f}{s['traces']:7d}{100 * s['input_share']:7.2f}")
    lines.append(f"input pipeline alone: {result['input_ms_per_batch']:.2f} ms/batch; process peak "
                 f"RSS (ru_maxrss) {result['process_peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


# --------------------------------------------------------------------------- op breakdown
def _order(name: str) -> str:
    depth = name.count("gradient_tape/")
    return ("forward", "1st-order grad", "2nd-order grad")[min(depth, 2)]


def _kind(op_type: str) -> str:
    op_type = re.sub(r"^_(MklNative|Mkl)", "", op_type)
    if op_type.startswith(("Conv2D", "MatMul", "FusedMatMul")) or "Pool" in op_type:
        return op_type
    return "elementwise"


def _layer(op_name: str, network: str) -> str:
    match = re.search(rf"(?:^|/){re.escape(network)}(?:_\d+)?/([^/]+?)(?:_\d+)?/", op_name)
    if match:
        return match.group(1)
    return "other"  # loss, metrics, optimizer update


def breakdown(label: str, model_name: str, mnist, *, steps: int, batch_size: int) -> dict:
    """Per-op CPU time of ``steps`` fit steps from a TensorFlow profiler trace.

    Every op's time is its fastest occurrence times its occurrences per step, which
    filters out preemption by other processes. Returns ``{(order, layer, kind): ms per step}``.
    """
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:  # internal module; moved between TF releases
        print("op breakdown needs tensorflow.tsl.profiler.protobuf.xplane_pb2", file=sys.stderr)
        return {}
    model, _ = build(model_name, mnist)
    network = model.network.name
    ds = training.batches(mnist.x_train, mnist.y_train, batch_size=batch_size, epochs=10_000)
    model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        trace = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
        with open(trace, "rb") as f:
            space.ParseFromString(f.read())
    durations = collections.defaultdict(list)
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    durations[name].append(event.duration_ps / 1e9)
    totals = collections.Counter()
    for name, ds_ in durations.items():
        op_name, op_type = name.rsplit(":", 1)
        if op_type == "AddN":  # sums of gradients arriving along several paths
            key = ("grad sums", "-", "AddN")
        else:
            key = (_order(op_name), _layer(op_name, network), _kind(op_type))
        totals[key] += min(ds_) * len(ds_) / steps
    return dict(totals)


def print_breakdown(results: dict, top: int = 18) -> None:
    for label, totals in results.items():
        total = sum(totals.values())
        print(f"\n{label}: {total:.1f} ms of op time per step (fastest occurrence of each op)")
        for (order, layer, kind), ms in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {ms:7.1f} ms  {100 * ms / total:5.1f}%  {order:<15s} {layer:<11s} {kind}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    labels = [label for label, _ in STEPS]
    p.add_argument("--steps", default=",".join(labels),
                   help="comma-separated subset of " + ",".join(labels))
    p.add_argument("--xla", default="", help="also time these steps with compile(jit_compile=True)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds")
    p.add_argument("--steps-per-round", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per model (tracing)")
    p.add_argument("--input-batches", type=int, default=200)
    p.add_argument("--inter-op-threads", type=int, default=0, help="0: TensorFlow's default")
    p.add_argument("--intra-op-threads", type=int, default=0, help="0: TensorFlow's default")
    p.add_argument("--breakdown", action="store_true",
                   help="also profile plain and double_backprop steps; print where time goes")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.steps = [s for s in args.steps.split(",") if s]
    args.xla = [s for s in args.xla.split(",") if s]
    for s in args.steps + args.xla:
        if s not in labels:
            p.error(f"unknown step {s!r}; choose from {', '.join(labels)}")
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    result = run(args)
    print(table(result), flush=True)
    if args.breakdown:
        mnist = data.load("mnist", data_dir=args.data_dir)
        result["breakdown"] = {
            label: breakdown(label, name, mnist, steps=10, batch_size=args.batch_size)
            for label, name in STEPS[:2]}
        print_breakdown(result["breakdown"])
        result["breakdown"] = {label: {" | ".join(key): v for key, v in t.items()}
                               for label, t in result["breakdown"].items()}
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
