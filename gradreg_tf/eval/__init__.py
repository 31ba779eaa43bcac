"""Evaluation: every number a figure, a table or a test reports is computed by one function here.

    grids      accuracy, transfer grids with per-image results (was gradreg_tf.evaluation)
    claims     the paper's claims as statistical checks (paired per-image standard errors)
    seeds      verdicts and distances across training seeds
    metrics    macro-F1, grid agreement, black-box means, Venn regions, distribution summaries
    audit      the robustness audit: PGD, APGD, Square, masking checks (was gradreg_tf.audit)
    compare    ours against the published grids; sweeps: one λ-sweep model's scores
    io         the result files: CSV, JSON with a separate run log, markdown (all atomic)

``figures/README.md`` maps each reported measurement to its function. Submodules are imported
on use (``from gradreg_tf.eval import claims``), so importing this package costs nothing.
"""
