"""Argument checks shared by every component: one rule per kind of value.

Each check returns the value normalized (an int as `int`, a real as `float`, a sequence as
a tuple) or raises a one-line ValueError (TypeError for a value of the wrong kind) that
names the argument, the rule and what was received. Components call these in their
constructors, so a bad hyperparameter fails where it is given, not at the first step.
"""

import math
import numbers

import numpy as np


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, (numbers.Real, np.floating, np.integer)) \
        and not isinstance(value, bool)


def integer(value, name, minimum=None, maximum=None):
    """An int in [minimum, maximum] (either bound optional)."""
    if not _is_int(value):
        raise TypeError(f"`{name}` must be an int; got {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"`{name}` must be {what}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an int <= {maximum}; got {value!r}.")
    return value


def positive_int(value, name):
    """An int >= 1."""
    return integer(value, name, minimum=1)


def real(value, name, minimum=None, maximum=None, strict=False, finite=True):
    """A real number (float) >= minimum (> minimum if `strict`), <= maximum, finite."""
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a number; got {value!r}.")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = {(0, True): "positive", (0, False): "non-negative"}.get(
            (minimum, strict), f"{'>' if strict else '>='} {minimum}")
        raise ValueError(f"`{name}` must be {bound}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; got {value!r}.")
    return value


def positive(value, name):
    """A finite float > 0."""
    return real(value, name, minimum=0, strict=True)


def non_negative(value, name):
    """A finite float >= 0."""
    return real(value, name, minimum=0)


def boolean(value, name):
    """True or False (NumPy booleans accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")
    return bool(value)


def choice(value, name, options):
    """One of `options`."""
    if value not in tuple(options):
        raise ValueError(f"`{name}` must be one of {list(options)}; got {value!r}.")
    return value


def positive_ints(value, name, min_length=1):
    """A tuple of at least `min_length` positive ints (layer widths)."""
    if not isinstance(value, (list, tuple)) or len(value) < min_length \
            or not all(_is_int(v) and v > 0 for v in value):
        raise ValueError(f"`{name}` must be a sequence of at least {min_length} positive "
                         f"int(s); got {value!r}.")
    return tuple(int(v) for v in value)


def image_shape(value, name="input_shape"):
    """(height, width, channels) of positive ints."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"`{name}` must be (height, width, channels) of positive ints; "
                         f"got {value!r}.")
    return positive_ints(value, name, min_length=3)
