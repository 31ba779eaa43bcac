"""tf.distribute: MirroredStrategy and MultiWorkerMirroredStrategy give the one-device result.

Every mean in GradRegClassifier's objective is over the global batch (penalties.global_batch_size),
so the replicas' partial losses sum to the one-device loss and the summed gradients equal
its gradients. The distributed runs happen in child processes (tests/_multiworker_child.py)
because logical devices and TF_CONFIG must be set before TensorFlow initializes; the
one-device reference runs in the test process meanwhile. The basic
2-replica cases (double backprop; certainty + advtrain, one step) are in
test_models.py::test_two_replicas_match_one_device; here: the combined objective with
uneven per-replica batches, the adversarial-penalty variant, soft labels at a temperature,
two epochs with Adam, and two worker processes on 127.0.0.1.
"""

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

CHILD = pathlib.Path(__file__).with_name("_multiworker_child.py")
REPO = CHILD.resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_multiworker_child", CHILD)
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)
TIMEOUT = 150  # seconds for a group of child processes (they take ~10-40 s)


def _child_env(**extra):
    """The environment of a child: this checkout's gradreg_tf first on the path, no TF_CONFIG."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    path = [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=os.pathsep.join(path),
               **extra)
    return env


def _on_cpu(fn, *args):
    """Runs the one-device reference on the CPU, the device the children are pinned to
    (on a GPU host the default device would be a GPU with TF32 matmuls)."""
    import tensorflow as tf

    with tf.device("/CPU:0"):
        return fn(*args)


class ChildError(RuntimeError):
    """A child process failed or timed out (the message holds the tails of their stderr)."""


def _run_children(tmp_path, specs, timeout=TIMEOUT, meanwhile=None):
    """Starts ``specs`` = [(name, argv, env)] at once; returns {name: (json result, weights)}.

    ``meanwhile()`` runs in this process while the children run; its result is returned
    under the name ``"meanwhile"``. Output goes to files (no pipe can fill up and block a
    worker). On a failure or timeout every child still running is killed and
    :class:`ChildError` is raised with their stderr.
    """
    procs = {}
    results = {}
    try:
        for name, argv, env in specs:
            out = open(tmp_path / f"{name}.out", "w")
            err = open(tmp_path / f"{name}.err", "w")
            procs[name] = (subprocess.Popen([sys.executable, str(CHILD), *argv], stdout=out,
                                            stderr=err, env=env, cwd=tmp_path), out, err)
        deadline = time.monotonic() + timeout
        if meanwhile is not None:
            results["meanwhile"] = meanwhile()
        while any(p.poll() is None for p, _, _ in procs.values()):
            failed = [n for n, (p, _, _) in procs.items() if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p, out, err in procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
            out.close()
            err.close()
    bad = {n: p.returncode for n, (p, _, _) in procs.items() if p.returncode != 0}
    if bad:
        logs = "\n".join(f"--- {n} (exit {rc}):\n" + (tmp_path / f"{n}.err").read_text()[-3000:]
                         for n, rc in bad.items())
        raise ChildError(f"child processes failed or timed out after {timeout} s: {bad}\n{logs}")
    for name, argv, _ in specs:
        result = json.loads((tmp_path / f"{name}.out").read_text().strip().splitlines()[-1])
        with np.load(tmp_path / argv[2]) as f:
            weights = [f[f"arr_{i}"] for i in range(len(f.files))]
        results[name] = (result, weights)
    return results


def _max_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


@pytest.mark.parametrize("case", ["combined", "adversarial_penalty", "soft_labels"])
def test_two_replicas_match_one_device_over_two_epochs(tmp_path, case):
    """MirroredStrategy on 2 logical CPUs vs one device: same losses, penalties and weights.

    Two epochs with Adam (6 steps), the last batch of each epoch short; in ``combined`` it has
    7 examples, split 4/3 between the replicas.
    """
    try:
        results = _run_children(tmp_path, [("mirrored", ["mirrored", case, "mirrored.npz"],
                                             _child_env())],
                                meanwhile=lambda: _on_cpu(child.train, case))
    except ChildError as e:
        pytest.fail(str(e))
    single, mirrored, w_mirrored = results["meanwhile"], *results["mirrored"]
    w_single = single["weights"]
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["penalty"], single["penalty"], rtol=1e-5, atol=1e-9)
    assert min(single["penalty"]) > 0  # the penalty is on
    assert _max_diff(w_mirrored, w_single) < 1e-5


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_two_workers_end_with_identical_weights(tmp_path):
    """Two worker processes on 127.0.0.1 (TF_CONFIG) train with MultiWorkerMirroredStrategy.

    Both end with bitwise identical weights, equal (1e-5) to one process with the same global
    batches of 32, 32 and 24 (each worker computes half of every batch, its penalty and loss
    scaled to the global batch), over two epochs with Adam.
    """
    for attempt in range(2):  # a free port can be taken between the probe and the bind
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        specs = [(f"worker{i}", ["worker", "multiworker", f"worker{i}.npz"],
                  _child_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                                   "task": {"type": "worker", "index": i}})))
                 for i in range(2)]
        try:
            results = _run_children(tmp_path, specs,
                                    meanwhile=lambda: _on_cpu(child.train, "multiworker"))
            break
        except ChildError as e:
            port_clash = "address already in use" in str(e).lower() or "bind" in str(e).lower()
            if attempt or not port_clash:
                pytest.fail(str(e))
    (w0, weights0), (w1, weights1) = results["worker0"], results["worker1"]
    single = results["meanwhile"]
    weights_single = single["weights"]
    assert w0["replicas"] == w1["replicas"] == 2
    assert all(np.array_equal(a, b) for a, b in zip(weights0, weights1))
    assert w0["loss"] == w1["loss"]
    np.testing.assert_allclose(w0["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(w0["penalty"], single["penalty"], rtol=1e-5)
    assert min(single["penalty"]) > 0
    assert _max_diff(weights0, weights_single) < 1e-5
