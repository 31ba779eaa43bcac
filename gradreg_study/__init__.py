"""The human-subject study of Ross & Doshi-Velez (AAAI 2018): stimuli, server, storage, analysis.

The paper reports that people rated adversarial examples made against gradient-regularized
models as showing the target class more often; this subpackage makes such a study runnable:

    stimuli      make_study(): adversarial examples per condition (model) -> a study folder
    config       the study configuration: consent, language, practice, quality rule, platform
    texts        every participant-facing string, per language (en, de)
    design       Protocol, assign(): Latin-square assignment of items and conditions
    storage      Store: SQLite (WAL) participants, stimuli, assignments, responses; CSV export
    server       create_app(), serve(): Flask app served by waitress (needs the `study` extra)
    population   the pre-registered analysis population and the participant flow
    intervals    participant-clustered intervals (GEE cluster-robust, participant bootstrap)
    analysis     analyze(): shares with clustered intervals, Fisher/chi-squared tests with Holm,
                 the participant-level primary contrast (permutation test, bootstrap)
    report       response times, viewports and perturbation sizes for the report
    simulation   simulated participants and clock, toy studies, rejection-rate measurement

The command line is ``experiments/human_study.py`` (make-stimuli, serve, export, analyze).
"""

from gradreg_study.design import Protocol
from gradreg_study.stimuli import Attack, AttackSettings, Study, load_study, make_study
from gradreg_study.storage import CANT_TELL, Store

__all__ = ["CANT_TELL", "Attack", "AttackSettings", "Protocol", "Store", "Study", "load_study",
           "make_study"]
