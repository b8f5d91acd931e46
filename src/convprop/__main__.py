"""``python -m convprop``: the command line (see :mod:`convprop.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
