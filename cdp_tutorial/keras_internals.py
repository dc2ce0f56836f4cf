"""The one place that touches Keras' private API: how a functional graph is stored.

Keras 3 has no public way to ask "which call of which operation produced this tensor?", and the
channel graph (:mod:`cdp_tutorial.graph`) needs exactly that to walk a model from its outputs back
to its input. Keras keeps the answer in private attributes (``KerasTensor._keras_history``,
``Operation._inbound_nodes`` and the ``Node`` objects they hold). Every use of them is wrapped
here in a small function, so a Keras upgrade that renames one breaks this file only, and
``tests/test_graph.py`` says so at once.

Tested on Keras 3.15.1 (TensorFlow 2.21). The attributes used here have been stable since Keras
3.0; ``pyproject.toml`` bounds Keras from above at the first version we have not tested.
"""

from __future__ import annotations

import keras

__all__ = ["call_count", "is_input_node", "node_arguments", "node_input_tensors",
           "node_output_shapes", "node_output_tensors", "producer_of"]


def producer_of(tensor):
    """``(operation, node)``: the operation call that produced a symbolic ``tensor``.

    Parameters
    ----------
    tensor : keras.KerasTensor
        A tensor of a functional (or built Sequential) model's graph.

    Returns
    -------
    tuple
        The :class:`keras.Operation` (a layer, a nested model, or a raw op such as
        ``keras.ops.relu``) and the private ``Node`` recording that one call.

    Raises
    ------
    ValueError
        If ``tensor`` is not part of a Keras graph.
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ValueError(f"{tensor!r} is not a symbolic tensor of a Keras functional graph")
    operation = history.operation
    return operation, operation._inbound_nodes[history.node_index]


def call_count(operation) -> int:
    """How many times ``operation`` has been called on symbolic tensors (its node count).

    A ``Sequential`` built with ``.add()`` calls its layers once per rebuild, so this counts stale
    calls too: use it for messages, never to decide which call a model uses.
    """
    return len(operation._inbound_nodes)


def is_input_node(node) -> bool:
    """True for the node of an ``InputLayer`` (a graph's start)."""
    return bool(node.is_input) or isinstance(node.operation, keras.layers.InputLayer)


def node_input_tensors(node) -> list:
    """The symbolic tensors one call read, in argument order."""
    return list(node.input_tensors)


def node_output_tensors(node) -> list:
    """The symbolic tensors one call produced."""
    return list(node.output_tensors)


def node_arguments(node) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of one call, constants included (``x * 0.5`` gives ``(x, 0.5)``)."""
    return tuple(node.arguments.args), dict(node.arguments.kwargs)


def node_output_shapes(node, input_shapes: dict) -> list[tuple]:
    """Output shapes of one call replayed on inputs of other shapes, without adding a call.

    Parameters
    ----------
    node
        A node from :func:`producer_of`.
    input_shapes : dict
        ``{id(input tensor): shape}`` for each of the node's input tensors (batch axis included).

    Returns
    -------
    list of tuple
        One shape per output tensor, as the operation's ``compute_output_spec`` gives it: the way
        a functional model infers shapes, so a model built on ``(None, None, 3)`` can be counted
        at a fixed size without being rebuilt.
    """
    specs = {key: keras.KerasTensor(shape) for key, shape in input_shapes.items()}
    args, kwargs = node.arguments.fill_in(specs)
    outputs = keras.tree.flatten(node.operation.compute_output_spec(*args, **kwargs))
    return [tuple(out.shape) for out in outputs]


# --------------------------------------------------------------------------- TensorFlow op determinism
# TensorFlow's public API can only switch op determinism on (tf.config.experimental.
# enable_op_determinism); reading it and switching it off again live in its private config module.
# cdp_tutorial.training.train needs both to leave the setting as it found it.

__all__ += ["disable_op_determinism", "op_determinism_enabled"]


def op_determinism_enabled() -> bool:
    """Whether TensorFlow's op determinism is on (``tf.config.experimental.enable_op_determinism``)."""
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


def disable_op_determinism() -> None:
    """Switch TensorFlow's op determinism off again (the public API has no way to)."""
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()
