"""The paper's SVHN transfer grids (FGSM and TGSM): ``experiments/transfer.py`` with
``--dataset svhn`` as the default (its docstring lists the options and the outputs)."""

import functools
import sys

import transfer

main = functools.partial(transfer.main, default_dataset="svhn")

if __name__ == "__main__":
    main(sys.argv[1:])
