"""The library's own exception type."""


class ConvpropError(ValueError):
    """Raised for every problem convprop detects in its input.

    It derives from :class:`ValueError`, so ``except ValueError`` catches it too.
    """
