"""The paper's MNIST transfer grids: ``transfer.py`` with ``--dataset mnist`` by default."""

import sys

import transfer


def main(argv=None):
    return transfer.main(argv, default_dataset="mnist")


if __name__ == "__main__":
    main(sys.argv[1:])
