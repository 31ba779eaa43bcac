"""The paper's notMNIST transfer grids: ``transfer.py`` with ``--dataset notmnist`` by default."""

import sys

import transfer


def main(argv=None):
    return transfer.main(argv, default_dataset="notmnist")


if __name__ == "__main__":
    main(sys.argv[1:])
