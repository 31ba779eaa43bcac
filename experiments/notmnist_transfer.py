"""The paper's notMNIST transfer grids (FGSM and TGSM), 5 x 5 models x 8 eps: figure + CSV.

    python experiments/notmnist_transfer.py [--budget reduced | --quick] [--n-examples all]

Same as ``experiments/transfer.py --dataset notmnist`` (see its docstring for the outputs).
"""

import sys

import transfer


def main(argv=None):
    return transfer.main(argv, default_dataset="notmnist")


if __name__ == "__main__":
    main(sys.argv[1:])
