"""What every CIFAR builder shares: argument checks, width and depth resolution, the small layer stacks.

Each family module (``vgg``, ``alexnet``, ``resnet``, ``mobilenetv2``) builds its network from these
pieces, so a width override, a residual tie or a dropped block is checked the same way everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import keras
from keras import layers

__all__ = ["BN", "bn_relu", "check_count", "check_ties", "classifier", "conv", "depth_order",
           "resolve_drops", "resolve_widths", "start"]

# PyTorch's BatchNorm defaults (its momentum 0.1 is Keras' 0.9). Keras' default 0.99 lets the moving
# statistics lag far behind during the short trainings of the quick profile.
BN = {"momentum": 0.9, "epsilon": 1e-5}


# --------------------------------------------------------------------------- argument checks


def check_count(value, what: str) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def check_multiplier(value) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ValueError."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"width_multiplier must be a finite number > 0 (e.g. 0.5), got {value!r}")
    return float(value)


def resolve_widths(model: str, defaults: Mapping[str, int], widths, width_multiplier) -> dict[str, int]:
    """Scale ``defaults`` by ``width_multiplier``, then apply the user's ``widths`` overrides.

    ``defaults`` maps every conv layer whose width may be set, in build order, to its unpruned width
    (only the layers of blocks that are built: a dropped block's convs are unknown names).
    """
    multiplier = check_multiplier(width_multiplier)
    resolved = {name: max(1, round(w * multiplier)) for name, w in defaults.items()}
    if widths is None:
        return resolved
    if not isinstance(widths, Mapping):
        raise ValueError(f"{model}: widths must be a mapping {{conv layer name: filters}}, "
                         f"got {type(widths).__name__}")
    unknown = [name for name in widths if name not in defaults]
    if unknown:
        raise ValueError(f"{model}: unknown conv layer name(s) in widths: {unknown}. "
                         f"Allowed names: {', '.join(defaults)}")
    for name, filters in widths.items():
        resolved[name] = check_count(filters, f"{model}: widths[{name!r}]")
    return resolved


def check_ties(model: str, resolved: Mapping[str, int], ties: Sequence[Sequence[str]]) -> None:
    """Raise ValueError if conv layers joined by an ``Add`` were given different widths.

    Checked before building so the reader gets the layer names, not Keras' shape-mismatch error.
    """
    for group in ties:
        got = {name: resolved[name] for name in group}
        if len(set(got.values())) > 1:
            raise ValueError(
                f"{model}: widths break a residual tie. The layers {', '.join(group)} feed the same "
                f"Add layers and must have the same number of filters, got {got}. "
                "Give all of them one value (residual channels are not pruned).")


def resolve_drops(model: str, drop_blocks, droppable: Sequence[str]) -> frozenset[str]:
    """Check ``drop_blocks`` (names of blocks to leave out) against the droppable ones.

    Raises
    ------
    ValueError
        ``drop_blocks`` is a string or not an iterable of names, or names a block that does not
        exist or cannot be dropped without changing a tensor's shape.
    """
    if drop_blocks is None:
        return frozenset()
    if isinstance(drop_blocks, str) or not isinstance(drop_blocks, Iterable):
        raise ValueError(f"{model}: drop_blocks must be a collection of block names such as "
                         f"[{droppable[0]!r}], got {drop_blocks!r}" if droppable else
                         f"{model}: drop_blocks must be a collection of block names, got {drop_blocks!r}")
    drops = list(drop_blocks)
    bad = [name for name in drops if name not in droppable]
    if bad:
        raise ValueError(f"{model}: cannot drop {bad}: only blocks whose input and output shapes are "
                         f"equal can be dropped. Droppable: {', '.join(droppable) or 'none'}")
    return frozenset(drops)


def depth_order(stages: Sequence[Sequence[str]], kept_per_stage: Sequence[int]) -> tuple[str, ...]:
    """The order in which depth shrinking drops blocks: deepest-first within the fullest stage.

    Repeatedly take the stage with the most blocks left (ties go to the earlier stage) and drop its
    last droppable block. This reproduces EdgeCompress's ResNet-50 depths: one drop turns
    (3, 4, 6, 3) into (3, 4, 5, 3) (their ``D09``), three drops into (3, 3, 4, 3) (``D08``).

    Parameters
    ----------
    stages : sequence of sequence of str
        Per stage, its droppable blocks in build order.
    kept_per_stage : sequence of int
        Per stage, how many of its blocks can never be dropped (e.g. a block that changes shape).
    """
    remaining = [list(blocks) for blocks in stages]
    order = []
    while any(remaining):
        sizes = [len(blocks) + kept for blocks, kept in zip(remaining, kept_per_stage)]
        stage = max((i for i in range(len(remaining)) if remaining[i]), key=lambda i: (sizes[i], -i))
        order.append(remaining[stage].pop())
    return tuple(order)


# --------------------------------------------------------------------------- shared layers


def conv(x, filters: int, kernel_size: int, name: str, strides: int = 1):
    """A bias-free, same-padded Conv2D with He-normal initialisation."""
    # He-normal suits ReLU networks trained from scratch (Keras' default Glorot assumes linear units);
    # the rethinking-network-pruning VGG initialises its convs the same way.
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)(x)


def bn_relu(x, bn_name: str, relu_name: str | None = None, max_value: float | None = None):
    """BatchNorm, then a ReLU (ReLU6 with ``max_value=6``) unless ``relu_name`` is None."""
    x = layers.BatchNormalization(name=bn_name, **BN)(x)
    if relu_name is not None:
        x = layers.ReLU(max_value=max_value, name=relu_name)(x)
    return x


def classifier(x, num_classes: int):
    """The softmax Dense layer named ``predictions`` that ends every network."""
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def start(num_classes: int, input_shape) -> keras.KerasTensor:
    """Check ``num_classes`` and ``input_shape`` and return the model's ``input`` tensor."""
    check_count(num_classes, "num_classes")
    if (isinstance(input_shape, str) or not isinstance(input_shape, Sequence) or len(input_shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                   for v in input_shape)):
        raise ValueError(f"input_shape must be (height, width, channels) of positive ints, "
                         f"e.g. (24, 24, 3), got {input_shape!r}")
    return keras.Input(shape=tuple(int(v) for v in input_shape), name="input")
