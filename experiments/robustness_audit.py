"""Robustness audit of the five paper models: strong white-box attacks, transfer, noise, masking.

    python experiments/robustness_audit.py --dataset mnist --budget paper|reduced|quick
        [--n-test 1000] [--steps 40] [--restarts 5] [--epsilons 0.1,0.2,...] [--models ...]
        [--apgd-steps 100] [--apgd-targets 3] [--square-queries 1000]

Beyond the paper (:mod:`gradreg_tf.eval.audit`): for each model, accuracy vs eps on the first
``--n-test`` test images under FGSM and PGD (40 steps of 2.5·eps/40, 5 random restarts) on the
cross-entropy and on the Carlini-Wagner margin, APGD-CE and APGD-T (targeted DLR, Croce & Hein
2020), the gradient-free Square Attack, the best transfer attack from the other models,
random-sign noise, the per-example worst case, and the obfuscated-gradients checks (each
raised, cleared or "not evaluated" when the run did not measure its evidence). Writes, in
``--out`` (default ``figures/``), with ``<stem> = <dataset>_robustness_audit_<budget>``:

* ``<stem>.csv``: one row per curve point (dataset, budget, model, attack, eps, accuracy,
  n_correct, n_examples, source, source_attack; ``attack = transfer`` rows are every
  (source, source attack) candidate);
* ``<stem>.png``/``.pdf``: one panel per model, accuracy vs eps per attack, worst case bold;
* ``<stem>.json``: provenance, settings, clean accuracy, diagnostics, timing, the summary;
* ``<stem>.per_example.npz``: which images survive which attack at which eps
  (:func:`gradreg_tf.eval.audit.save_per_example`), so the worst case can be recomputed on any
  subset of the images;
* ``<stem>.md``: the summary table (transfer, which the paper's claims are about, beside the
  worst case; :func:`gradreg_tf.eval.audit.summary_markdown`).

Every file is written to a temporary name and renamed, so a crash leaves no half-written file.
"""

from __future__ import annotations

import sys
import time

import _common

from gradreg_tf import cli
from gradreg_tf.recipes import PAPER_MODELS


def build_parser():
    from gradreg_tf.eval.audit import AUDIT_EPSILONS

    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--n-test", type=int, default=1000, help="first N test images")
    p.add_argument("--steps", type=int, default=40, help="PGD steps per restart")
    p.add_argument("--restarts", type=cli.positive_int, default=5, help="PGD random restarts")
    p.add_argument("--epsilons", type=cli.nonnegative_floats,
                   default=",".join(f"{e:g}" for e in AUDIT_EPSILONS),
                   help="comma-separated L-inf eps (0 = clean is always included)")
    p.add_argument("--models", default=",".join(PAPER_MODELS),
                   help=f"comma-separated models to audit, from {', '.join(PAPER_MODELS)}")
    p.add_argument("--apgd-steps", type=cli.positive_int, default=100,
                   help="APGD-CE/APGD-T steps")
    p.add_argument("--apgd-targets", type=cli.positive_int, default=3,
                   help="APGD-T target classes")
    p.add_argument("--square-queries", type=cli.positive_int, default=1000,
                   help="Square Attack queries")
    p.add_argument("--attack-seed", type=int, default=0,
                   help="seed of PGD's random starts and of the noise")
    return p


def main(argv=None):
    """Runs the audit; returns the :class:`gradreg_tf.eval.audit.AuditResult`."""
    p = build_parser()
    args = p.parse_args(argv)
    epsilons = args.epsilons
    names = cli.check_names(p, args.models, PAPER_MODELS, option="--models")
    if len(set(epsilons)) != len(epsilons):
        p.error(f"--epsilons: each value at most once, received {args.epsilons!r}")
    if not any(e > 0 for e in epsilons):
        p.error(f"--epsilons: needs a value > 0 (eps 0, the clean accuracy, is always "
                f"measured; no attack would run), received {args.epsilons!r}")

    from gradreg_tf import plotting
    from gradreg_tf.eval import audit
    from gradreg_tf.plotting.audit import AUDIT_STYLES, plot_robustness_audit

    start = time.time()
    ds = _common.load_dataset(args)
    n = min(args.n_test, len(ds.x_test))
    models = _common.paper_models(ds, args, names)
    _common.log(f"auditing {len(models)} models on {n} test images: eps {epsilons}, PGD "
                f"{args.steps} steps x {args.restarts} restarts")
    audit_start = time.time()
    result = audit.robustness_audit(models, ds.x_test[:n], ds.y_test[:n], bounds=ds.bounds,
                                    epsilons=epsilons, steps=args.steps, restarts=args.restarts,
                                    seed=args.attack_seed, apgd_steps=args.apgd_steps,
                                    apgd_targets=args.apgd_targets,
                                    square_queries=args.square_queries, progress=args.progress)
    audit_seconds = time.time() - audit_start
    _common.log(f"audit done in {audit_seconds:.0f} s")

    table_eps = tuple(e for e in audit.TABLE_EPS if e in result.epsilons)
    summary = audit.summary_rows(result, table_eps, label=plotting.model_text)
    stem = _common.stem(args, ds, f"robustness_audit_{args.budget}" if not args.batches
                        else f"robustness_audit_{args.batches}b")
    budget = _common.budget_text(ds, args)
    csv_path, json_path, md_path = (stem.with_suffix(s) for s in (".csv", ".json", ".md"))
    _common.write_csv(csv_path, [dict(dataset=ds.name, budget=args.budget, **r.as_dict())
                                 for r in result.rows], audit.CSV_FIELDS)
    _common.save(plot_robustness_audit(
        result.epsilons, {m: {a: result.curve(m, a) for a in AUDIT_STYLES} for m in result.models},
        flags={m: result.flags(m) for m in result.models},
        title=f"Robustness audit, {_common.title(ds)}",
        caption=f"{budget}; first {n} test images; PGD {args.steps} steps of 2.5ε/"
                f"{args.steps}, {args.restarts} restarts; APGD-CE/-T {args.apgd_steps} steps; "
                f"Square {args.square_queries} queries; worst case = per image over all attacks"),
        stem)
    _common.write_json(json_path, {
        **_common.metadata(ds, args, __file__, n_examples=n,
                           seconds=round(time.time() - start, 1),
                           audit_seconds=round(audit_seconds, 1)),
        **audit.report(result, summary, per_example=stem.with_suffix(".per_example.npz").name)})
    _common.io.write_text(md_path, audit.summary_document(result, summary, table_eps,
                                                          title=_common.title(ds), budget=budget))
    audit.save_per_example(result, stem.with_suffix(".per_example.npz"))
    for line in audit.summary_lines(summary, table_eps):
        _common.log(line)
    _common.log(f"wrote {csv_path}, {json_path}, {md_path} in {time.time() - start:.0f} s")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
