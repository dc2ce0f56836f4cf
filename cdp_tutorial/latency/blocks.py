"""The timed blocks of a model: each conv or dense layer with the layers LiteRT runs fused to it.

LiteRT folds batch norm into the convolution before it and fuses the activation into the same
kernel, and a max-pool straight after is one more cheap op on the same tensor. So the unit we time
is a **block**: one conv, depthwise conv or dense layer plus the chain of single-input,
channel-wise layers that follows it alone (batch norm, activation, pooling, dropout), up to the
next conv, a merge, a flatten or a layer with two readers.

Two blocks with the same **configuration** (layer type and settings, input size, what follows,
which widths can change) cost the same at the same widths, so the latency table measures each
configuration once: VGG-16's ``conv5`` and ``conv6`` (3x3 at 8x8, no pool after) share one.

A block's widths are read from the cost model of :mod:`cdp_tutorial.complexity`: for channel-group
widths ``w``, its input width is ``a_in @ w`` and its output width ``a_out @ w`` (a dense layer after
a flatten counts input *features*). That is what lets Algorithm 1 price a plan without building it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np

from cdp_tutorial import channel_rules as rules

#: Layer types that start a block.
TIMED = rules.CONVS + rules.SEPARABLE_CONVS + rules.DEPTHWISE + (keras.layers.Dense,)

# settings that do not change what a layer computes at inference, or that the block sets itself
_IGNORED = ("name", "trainable", "dtype", "filters", "units", "momentum", "epsilon", "seed",
            "center", "scale", "synchronized", "renorm")


@dataclass(frozen=True)
class Block:
    """One timed layer of a model and how its cost is looked up.

    Attributes
    ----------
    layer : str
        The conv or dense layer's name.
    key : str
        Its configuration (JSON text): blocks with equal keys share table entries.
    description : str
        The configuration for people: ``"Conv2D 3x3 @8x8 + BatchNormalization + ReLU"``.
    followers : tuple of str
        The fused layers' names.
    in_kind, out_kind : str
        ``"free"`` (the width changes with pruning), ``"fixed"`` (it never does; the table keeps
        one width) or, for the input of a depthwise conv, ``"tied"`` (output / depth multiplier).
    in_width, out_width : int
        The widths in the model the block was found in.
    row : int
        Its row in the cost model's layer list.
    """

    layer: str
    key: str
    description: str
    followers: tuple
    in_kind: str
    out_kind: str
    in_width: int
    out_width: int
    row: int


def find_blocks(graph, costs) -> list[Block]:
    """The timed blocks of an analysed model, in model order.

    Parameters
    ----------
    graph : cdp_tutorial.graph.ChannelGraph
    costs : cdp_tutorial.complexity.CostModel
        Built on ``graph``.

    Returns
    -------
    list of Block

    Examples
    --------
    >>> from cdp_tutorial.complexity import CostModel
    >>> from cdp_tutorial.graph import analyse
    >>> from cdp_tutorial.models import vgg16
    >>> graph = analyse(vgg16())
    >>> blocks = find_blocks(graph, CostModel(graph))
    >>> blocks[1].layer, blocks[1].followers, blocks[1].description
    ('conv2', ('bn2', 'relu2', 'pool1'), 'Conv2D 3x3 @32x32 + BatchNormalization + ReLU + MaxPooling2D 2x2')
    >>> blocks[4].key == blocks[5].key  # conv5 and conv6: 3x3 at 8x8, nothing pooled after
    True
    """
    readers = {}
    for info in graph.layers.values():
        for parent in info.parents:
            readers.setdefault(parent, []).append(info.name)
    row = {name: i for i, name in enumerate(costs.layer_names)}
    free_group = np.array([bool(graph.groups[g].producers) and not graph.groups[g].frozen_by
                           for g in costs.group_ids])
    widths = costs.baseline_widths
    blocks = []
    for info in graph.layers.values():
        if not isinstance(info.layer, TIMED) or info.name not in row or len(info.parents) != 1:
            continue
        followers = _followers(graph, readers, info.name)
        i = row[info.name]
        out_kind = "free" if free_group[costs.a_out[i] != 0].any() else "fixed"
        if isinstance(info.layer, rules.DEPTHWISE):
            in_kind = "tied"
        else:
            in_kind = "free" if free_group[costs.a_in[i] != 0].any() else "fixed"
        in_width, out_width = int(round(costs.a_in[i] @ widths)), int(round(costs.a_out[i] @ widths))
        settings = {"layer": _settings(info.layer), "input": [int(d) for d in info.in_shape[1:-1]],
                    "in": in_kind if in_kind != "fixed" else in_width,
                    "out": out_kind if out_kind != "fixed" else out_width,
                    "then": [_settings(graph.layers[f].layer) for f in followers]}
        blocks.append(Block(info.name, json.dumps(settings, sort_keys=True), _describe(info, graph, followers),
                            tuple(followers), in_kind, out_kind, in_width, out_width, i))
    return blocks


def build_block(key: str, in_width: int, out_width: int):
    """A standalone Keras model of one block configuration at the given widths, batch size 1.

    ``in_width`` is ignored for a depthwise conv (its input is ``out_width / depth_multiplier``).
    The weights are random: latency does not depend on their values.

    Examples
    --------
    >>> import json
    >>> key = json.dumps({"layer": {"class": "Conv2D", "config": {"kernel_size": [3, 3],
    ...     "padding": "same"}}, "input": [8, 8], "in": "free", "out": "free", "then": []})
    >>> build_block(key, 16, 32).output.shape
    (1, 8, 8, 32)
    """
    settings = json.loads(key)
    layer_class = getattr(keras.layers, settings["layer"]["class"])
    config = dict(settings["layer"]["config"])
    if issubclass(layer_class, rules.DEPTHWISE):
        multiplier = int(config.get("depth_multiplier", 1))
        in_width = out_width // multiplier
    elif issubclass(layer_class, keras.layers.Dense):
        config["units"] = int(out_width)
    else:
        config["filters"] = int(out_width)
    x = inputs = keras.Input((*settings["input"], int(in_width)), batch_size=1)
    x = layer_class.from_config(config)(x)
    for follower in settings["then"]:
        x = getattr(keras.layers, follower["class"]).from_config(dict(follower["config"]))(x)
    return keras.Model(inputs, x)


def _followers(graph, readers, name) -> list[str]:
    """The chain of channel-wise layers that read ``name``'s output alone, one after another."""
    chain, current = [], name
    while len(readers.get(current, ())) == 1:
        nxt = graph.layers[readers[current][0]]
        if nxt.role != "channelwise" or len(nxt.parents) != 1 or not isinstance(nxt.layer, keras.layers.Layer):
            break
        if not hasattr(keras.layers, type(nxt.layer).__name__):  # a custom layer: not rebuildable
            break
        chain.append(nxt.name)
        current = nxt.name
    return chain


def _settings(layer) -> dict:
    """The part of a layer's config that decides its cost (no names, widths or initialisers)."""
    config = {}
    for key, value in layer.get_config().items():
        if key in _IGNORED or any(word in key for word in ("initializer", "regularizer", "constraint")):
            continue
        if isinstance(value, (list, tuple)):
            value = list(value)
        if value is None or isinstance(value, (bool, int, float, str, list)):
            config[key] = value
    return {"class": type(layer).__name__, "config": config}


def _describe(info, graph, followers) -> str:
    layer = info.layer
    text = type(layer).__name__
    if hasattr(layer, "kernel_size"):
        text += " " + "x".join(str(int(k)) for k in layer.kernel_size)
        strides = tuple(int(s) for s in layer.strides)
        if any(s != 1 for s in strides):
            text += " /" + "x".join(map(str, strides))
    if len(info.in_shape) > 2:
        text += " @" + "x".join(str(int(d)) for d in info.in_shape[1:-1])
    for name in followers:
        follower = graph.layers[name].layer
        text += " + " + type(follower).__name__
        if hasattr(follower, "pool_size"):
            text += " " + "x".join(str(int(k)) for k in follower.pool_size)
    return text
