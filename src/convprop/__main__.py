"""``python -m convprop``: the command line (see :mod:`convprop.cli`)."""

import sys

if __name__ == "__main__":
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C in the first moments, while Python imports the command
        print("convprop: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
