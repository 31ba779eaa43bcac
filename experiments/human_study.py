"""The human-subject study: make the stimuli, serve them to people, export and analyse the answers.

    python experiments/human_study.py make-stimuli --dataset mnist   # the shipped paper models
    python experiments/human_study.py serve studies/mnist_tgsm_paper_seed0
    python experiments/human_study.py export studies/mnist_tgsm_paper_seed0
    python experiments/human_study.py analyze studies/mnist_tgsm_paper_seed0
    python experiments/human_study.py simulate studies/mnist_tgsm_paper_seed0   # pilot run

Ross & Doshi-Velez (AAAI 2018) report that people rated targeted adversarial examples made
against gradient-regularized models as showing the target class more often than those made
against other models; the paper does not describe the protocol. Here it is a set of stated
parameters (``--help`` of each command) with the paper's stimuli as the default: iterated TGSM,
eps 0.1, 10 steps (SVHN 15, as the paper's grids), from the first 5 test images of every class
toward every other class, against the five paper models (:mod:`gradreg_study`). ``simulate``
fills a separate database with simulated participants of known answer shares, to try the
analysis before collecting data.
"""

import sys

import _common

from gradreg_study import cli


def main(argv=None):
    """Runs ``human_study.py <command> [options]`` (:func:`gradreg_study.cli.main`)."""
    return cli.main(argv, helpers=_common)


if __name__ == "__main__":
    main(sys.argv[1:])
