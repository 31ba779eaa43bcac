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
  worst case).

Every file is written to a temporary name and renamed, so a crash leaves no half-written file.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import _common

from gradreg_tf import cli

TABLE_EPS = (0.1, 0.2, 0.3)
"""The eps of the summary table (MNIST's customary 0.1-0.3; those on the grid are shown)."""

CSV_FIELDS = ("dataset", "budget", "model", "attack", "eps", "accuracy", "n_correct",
              "n_examples", "source", "source_attack")


def build_parser():
    from gradreg_tf.eval.audit import AUDIT_EPSILONS
    from gradreg_tf.recipes import PAPER_MODELS

    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--n-test", type=int, default=1000, help="first N test images")
    p.add_argument("--steps", type=int, default=40, help="PGD steps per restart")
    p.add_argument("--restarts", type=int, default=5, help="PGD random restarts")
    p.add_argument("--epsilons", type=cli.nonnegative_floats,
                   default=",".join(f"{e:g}" for e in AUDIT_EPSILONS),
                   help="comma-separated L-inf eps (0 = clean is always included)")
    p.add_argument("--models", default=",".join(PAPER_MODELS),
                   help=f"comma-separated models to audit, from {', '.join(PAPER_MODELS)}")
    p.add_argument("--apgd-steps", type=int, default=100, help="APGD-CE/APGD-T steps")
    p.add_argument("--apgd-targets", type=int, default=3, help="APGD-T target classes")
    p.add_argument("--square-queries", type=int, default=1000, help="Square Attack queries")
    p.add_argument("--attack-seed", type=int, default=0,
                   help="seed of PGD's random starts and of the noise")
    return p


def summary_rows(result, table_eps) -> list[dict]:
    """Per model: clean accuracy, best transfer and worst case at ``table_eps``, the strongest
    single attack at the largest of them, and the masking checks that fired."""
    from gradreg_tf import plotting
    from gradreg_tf.eval import audit

    # (not Square: it attacks only the gradient attacks' survivors, so its curve is a joint one)
    single = ([a.value for a in audit.WhiteBox] + [audit.APGD_CE, audit.APGD_T]
              + [audit.BEST_TRANSFER, audit.NOISE])
    rows = []
    for name in result.models:
        row = {"model": name, "label": plotting.model_text(name),
               "clean": result.accuracy(name, audit.WORST_CASE, 0.0)}
        for e in table_eps:
            row[f"transfer@{e:g}"] = result.accuracy(name, audit.BEST_TRANSFER, e)
            row[f"whitebox_pgd_ce@{e:g}"] = result.accuracy(name, audit.WhiteBox.PGD_CE.value, e)
            row[f"worst_case@{e:g}"] = result.accuracy(name, audit.WORST_CASE, e)
        if table_eps:
            last = table_eps[-1]
            row["strongest_attack"] = min(single, key=lambda a: result.accuracy(name, a, last))
            row["strongest_at"] = last
        row["masking_flags"] = list(result.flags(name))
        row["not_evaluated"] = list(result.not_evaluated(name))
        rows.append(row)
    return rows


def markdown(rows, table_eps) -> str:
    def pct(v):
        return "n/a" if v != v else f"{100 * v:.1f}%"

    columns = [("label", "Model"), ("clean", "Clean")]
    columns += [(f"transfer@{e:g}", f"Best transfer ε={e:g}") for e in table_eps]
    columns += [(f"worst_case@{e:g}", f"Worst case ε={e:g}") for e in table_eps]
    columns += [("strongest", f"Strongest attack ε={table_eps[-1]:g}" if table_eps else ""),
                ("flags", "Gradient masking")]
    shown = []
    for r in rows:
        s = {k: (pct(v) if isinstance(v, float) else v) for k, v in r.items()}
        s["strongest"] = r.get("strongest_attack", "")
        s["flags"] = "yes: " + ", ".join(r["masking_flags"]) if r["masking_flags"] else "no"
        if r.get("not_evaluated"):
            s["flags"] += " (not evaluated: " + ", ".join(r["not_evaluated"]) + ")"
        shown.append(s)
    return _common.markdown_table(shown, columns)


def _replace_atomically(tmp: pathlib.Path, final: pathlib.Path) -> pathlib.Path:
    os.replace(tmp, final)
    return final


def _tmp(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def main(argv=None):
    """Runs the audit; returns the :class:`gradreg_tf.eval.audit.AuditResult`."""
    from gradreg_tf.recipes import PAPER_MODELS

    p = build_parser()
    args = p.parse_args(argv)
    epsilons = args.epsilons
    names = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in names if m not in PAPER_MODELS]
    if unknown or not names:
        p.error(f"--models: unknown {unknown or names}; choose from {', '.join(PAPER_MODELS)}")
    if len(set(epsilons)) != len(epsilons):
        p.error(f"--epsilons: each value at most once, received {args.epsilons!r}")
    if not any(e > 0 for e in epsilons):
        p.error(f"--epsilons: needs a value > 0 (eps 0, the clean accuracy, is always "
                f"measured; no attack would run), received {args.epsilons!r}")
    for option in ("n_test", "steps", "restarts", "apgd_steps", "apgd_targets",
                   "square_queries"):
        if getattr(args, option) < 1:
            p.error(f"--{option.replace('_', '-')} must be >= 1, received {getattr(args, option)}")
    if args.attack_seed < 0:
        p.error(f"--attack-seed must be >= 0, received {args.attack_seed}")

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

    table_eps = tuple(e for e in TABLE_EPS if e in result.epsilons)
    summary = summary_rows(result, table_eps)
    stem = _common.stem(args, ds, f"robustness_audit_{args.budget}" if not args.batches
                        else f"robustness_audit_{args.batches}b")
    budget = _common.budget_text(ds, args)
    csv_path, json_path, md_path = (stem.with_suffix(s) for s in (".csv", ".json", ".md"))

    rows = [dict(dataset=ds.name, budget=args.budget, **r.as_dict()) for r in result.rows]
    _common.write_csv(_tmp(csv_path), rows, list(CSV_FIELDS))
    curves = {m: {a: result.curve(m, a) for a in AUDIT_STYLES}
              for m in result.models}
    fig = plot_robustness_audit(
        result.epsilons, curves, flags={m: result.flags(m) for m in result.models},
        title=f"Robustness audit, {_common.title(ds)}",
        caption=f"{budget}; first {n} test images; PGD {args.steps} steps of 2.5ε/"
                f"{args.steps}, {args.restarts} restarts; APGD-CE/-T {args.apgd_steps} steps; "
                f"Square {args.square_queries} queries; worst case = per image over all attacks")
    figure_tmp = stem.with_name(f".{stem.name}.{os.getpid()}.tmp")
    figure_paths = [_replace_atomically(path, stem.with_suffix(path.suffix))
                    for path in plotting.save_figure(fig, figure_tmp)]
    _common.log("wrote " + ", ".join(str(path) for path in figure_paths))
    _common.write_json(json_path, {  # atomic itself (and moves the run log beside it)
        **_common.metadata(ds, args, __file__, n_examples=n,
                           seconds=round(time.time() - start, 1),
                           audit_seconds=round(audit_seconds, 1)),
        "settings": result.settings,
        "seconds_per_model": result.seconds,
        "diagnostics": {m: [d.as_dict() for d in checks]
                        for m, checks in result.diagnostics.items()},
        "masked": {m: result.masked(m) for m in result.models},
        "not_evaluated": {m: list(result.not_evaluated(m)) for m in result.models},
        "per_example": stem.with_suffix(".per_example.npz").name,
        "summary": summary,
        "note": "The paper's robustness claims concern transfer (black-box) attacks; the "
                "worst case adds white-box FGSM/PGD on the cross-entropy and the margin, "
                "APGD-CE, APGD-T, the gradient-free Square Attack, and noise.",
    })
    _tmp(md_path).write_text(
        f"Robustness audit, {_common.title(ds)} ({budget}; first {n} test images; PGD "
        f"{args.steps} steps, {args.restarts} restarts; APGD-CE and APGD-T {args.apgd_steps} "
        f"steps, {args.apgd_targets} targets; Square {args.square_queries} queries). The paper's claims are about "
        f"transfer; the worst case is over every attack of the audit, per image.\n\n"
        + markdown(summary, table_eps))
    for path in (csv_path, md_path):
        _replace_atomically(_tmp(path), path)
    audit.save_per_example(result, stem.with_suffix(".per_example.npz"))
    for row in summary:
        flags = ", ".join(row["masking_flags"]) or "none"
        worst = ", ".join(f"{100 * row[f'worst_case@{e:g}']:.1f}%" for e in table_eps)
        _common.log(f"{row['model']:>12}: clean {100 * row['clean']:.1f}%, worst case at "
                    f"{table_eps}: {worst}; masking flags: {flags}")
    _common.log(f"wrote {csv_path}, {json_path}, {md_path} in {time.time() - start:.0f} s")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
