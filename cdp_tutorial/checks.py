"""Argument checks: one place for the number, seed and model validation every public function repeats.

In the style of scikit-learn's ``check_scalar`` / ``check_random_state``: each check raises early,
with a message that names the argument, says what was given and what is allowed, and returns the
value as a plain Python type (so it can go straight into JSON: ``np.int64(3)`` comes back as ``3``).

>>> check_int(np.int64(3), "seed", minimum=0)
3
>>> check_fraction(0.3, "target")
0.3
>>> check_fraction(1.5, "target")
Traceback (most recent call last):
    ...
ValueError: target must be a number strictly between 0 and 1, got 1.5
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["MAX_SEED", "check_choice", "check_fraction", "check_int", "check_model", "check_number", "check_seed"]


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False) -> int | None:
    """``value`` as a plain ``int`` (numpy integers accepted; ``bool`` and floats refused).

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it lies outside ``[minimum, maximum]``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{_range_text(minimum, maximum)}, "
                        f"got {value!r} ({type(value).__name__})")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value}")
    return value


def check_number(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 include_minimum: bool = True, include_maximum: bool = True) -> float:
    """``value`` as a finite plain ``float`` within the given bounds (``bool`` refused)."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    too_low = minimum is not None and (value < minimum or (value == minimum and not include_minimum))
    too_high = maximum is not None and (value > maximum or (value == maximum and not include_maximum))
    if too_low or too_high:
        low = "" if minimum is None else f"{'≥' if include_minimum else '>'} {minimum:g}"
        high = "" if maximum is None else f"{'≤' if include_maximum else '<'} {maximum:g}"
        raise ValueError(f"{name} must be {' and '.join(filter(None, (low, high)))}, got {value:g}")
    return value


def check_fraction(value, name: str) -> float:
    """A number strictly between 0 and 1 (a kept fraction, a step, a ratio), as a plain ``float``."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value)) or not 0 < float(value) < 1):
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


#: The largest seed: NumPy's legacy seeding, ``keras.utils.set_random_seed`` and TensorFlow's op
#: seeds take 32-bit unsigned integers, so a larger seed would only fail later, inside training.
MAX_SEED = 2**32 - 1


def check_seed(seed, name: str = "seed", *, allow_none: bool = False) -> int | None:
    """A seed: an integer in ``[0, 2**32 - 1]`` (numpy integers accepted), returned as a plain ``int``.

    With ``allow_none=True``, ``None`` passes through: the caller then draws a seed and records it.

    >>> check_seed(2**32)
    Traceback (most recent call last):
        ...
    ValueError: seed must be an integer in [0, 4294967295], got 4294967296
    """
    return check_int(seed, name, minimum=0, maximum=MAX_SEED, allow_none=allow_none)


def check_choice(value, name: str, choices) -> object:
    """``value`` if it is one of ``choices`` (compared as given), else a ``ValueError`` listing them."""
    if isinstance(value, (bool, np.bool_)) and not any(c is value for c in choices):
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _range_text(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" ≥ {minimum}"
    if maximum is not None:
        return f" ≤ {maximum}"
    return ""


def check_model(model) -> None:
    """Raise ``TypeError``/``ValueError`` early if ``model`` is not a built Keras model we can read."""
    import keras  # here, so that the number checks stay importable without Keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"expected a keras.Model (Sequential or functional), got {type(model).__name__}"
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not model.built or not inputs:
        raise ValueError(
            "the model has no known input shape (a subclassed model, or a Sequential never "
            "built on an Input); build it with keras.Input(...) (functional) or "
            "keras.Sequential([keras.Input(shape), ...])"
        )
    if len(inputs) != 1:
        raise ValueError(f"only single-input models are supported; this one has {len(inputs)}")


def check_input_shape(input_shape, model_shape) -> tuple:
    """The model's input shape (batch axis first) with its unknown sizes taken from ``input_shape``.

    ``model_shape`` is ``model.inputs[0].shape``, e.g. ``(None, None, None, 3)``; ``input_shape``
    gives every size but the batch axis, e.g. ``(64, 64, 3)``, and must agree with each size the
    model fixes. ``None`` returns ``model_shape`` unchanged.

    >>> check_input_shape((64, 64, 3), (None, None, None, 3))
    (None, 64, 64, 3)
    >>> check_input_shape((64, 64, 1), (None, None, None, 3))
    Traceback (most recent call last):
        ...
    ValueError: input_shape (64, 64, 1) disagrees with the model's input shape (None, None, 3): only its unknown (None) sizes may be chosen
    """
    model_shape = tuple(model_shape)
    if input_shape is None:
        return model_shape
    sizes = tuple(model_shape[1:])
    example = tuple(64 if d is None else d for d in sizes)
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple of {len(sizes)} sizes without the batch axis, "
                        f"e.g. {example}; got {input_shape!r}")
    if len(input_shape) != len(sizes):
        raise ValueError(f"input_shape must give the model's {len(sizes)} input sizes without the "
                         f"batch axis, e.g. {example}; got {tuple(input_shape)}")
    given = tuple(check_int(d, "each input_shape size", minimum=1) for d in input_shape)
    if any(known is not None and known != d for known, d in zip(sizes, given)):
        raise ValueError(f"input_shape {given} disagrees with the model's input shape {sizes}: "
                         "only its unknown (None) sizes may be chosen")
    return (model_shape[0], *given)
