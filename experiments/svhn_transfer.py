"""The paper's SVHN transfer grids: ``transfer.py`` with ``--dataset svhn`` by default."""

import sys

import transfer


def main(argv=None):
    return transfer.main(argv, default_dataset="svhn")


if __name__ == "__main__":
    main(sys.argv[1:])
