r"""What one layer costs, as a function of its input and output widths (used by :mod:`complexity`).

Every count is linear in the widths of the channel groups a layer reads and writes:

.. math::

    \text{params} = p_{io} C_{in} C_{out} + p_o C_{out} + p_i C_{in} + p_c, \qquad
    \text{MACs} = m_{io} C_{in} C_{out} + m_o C_{out} + m_i C_{in} + m_c

and the layer keeps ``act × C_out`` activations. :func:`layer_cost` gives the coefficients:

* convolution (Eq. 3, 7): :math:`p_{io} = K`, :math:`m_{io} = K\,H_{out}W_{out}` (``K`` kernel taps);
  a frozen grouped conv divides by its group count;
* depthwise conv, and a grouped conv whose channels follow its input (``a`` input channels per
  conv group; ``a = 1`` is a depthwise conv): every output channel reads ``a`` input channels,
  :math:`p_o = K a`, :math:`m_o = K a\,H_{out}W_{out}`;
* separable conv: its depthwise and pointwise parts; transposed conv: every *input* position
  scatters a kernel, :math:`m_{io} = K\,H_{in}W_{in}`; dense: ``in × out`` per position;
* ``MultiHeadAttention`` (its widths are frozen, so it is a constant): with ``h`` heads, key size
  ``k``, value size ``v``, ``N_q`` query and ``N_k`` key positions, ``d_q, d_k, d_v`` the query,
  key and value widths and ``d_o`` the output width,

  .. math::

      \text{MACs} = \underbrace{N_q d_q h k + N_k d_k h k + N_k d_v h v}_{\text{projections}}
      + \underbrace{h k\,N_q N_k / B}_{\text{scores}} + \underbrace{h v\,N_q N_k / B}_{\text{weighted sum}}
      + \underbrace{N_q\,h v\,d_o}_{\text{output}}

  where ``B`` is the product of the axes attention does not run over (1 by default: every
  position attends to every position). Softmax and the :math:`1/\sqrt{k}` scaling are
  element-wise and not counted, like activations elsewhere. TensorFlow's profiler agrees on a small
  model (``tests/test_flops_crosscheck.py``).
* any other layer with weights (batch norm, PReLU, normalisation): its stored numbers, per channel
  where a weight's last axis is the channel axis, and no MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from cdp_tutorial import channel_rules as rules

L = keras.layers


@dataclass(frozen=True)
class LayerCost:
    """``params = p_io*in*out + p_o*out + p_i*in + p_c``; ``macs`` likewise; ``act*out`` output elements."""

    p_io: float = 0
    p_o: float = 0
    p_i: float = 0
    p_c: float = 0
    m_io: float = 0
    m_o: float = 0
    m_i: float = 0
    m_c: float = 0
    act: float = 0
    kernel: str = ""
    pk_o: float = 0  # the kernel part of p_o (a depthwise kernel): what memory="eq5" counts per out channel
    pk_c: float = 0  # the kernel part of p_c (attention projections): what memory="eq5" counts


def layer_cost(info) -> LayerCost | None:
    """Cost coefficients of one layer of a channel graph, or ``None`` if it stores and computes nothing."""
    layer, pos = info.layer, info.out_positions
    if info.role == "attention":
        return attention_cost(info)
    if isinstance(layer, rules.SEPARABLE_CONVS):
        k, m = int(np.prod(layer.kernel_size)), int(layer.depth_multiplier)
        return LayerCost(p_io=m, p_o=int(layer.use_bias), p_i=k * m,
                         m_io=m * pos, m_i=k * m * pos, act=pos, kernel=kernel_text(layer))
    if isinstance(layer, rules.DEPTHWISE):
        k = int(np.prod(layer.kernel_size))
        return LayerCost(p_o=k + int(layer.use_bias), pk_o=k, m_o=k * pos, act=pos,
                         kernel=kernel_text(layer) + " dw")
    if isinstance(layer, rules.TRANSPOSED_CONVS):
        # every *input* position scatters a K-sized kernel: MACs = K C_in C_out H_in W_in
        k = int(np.prod(layer.kernel_size))
        return LayerCost(p_io=k, p_o=int(layer.use_bias), m_io=k * info.in_positions, act=pos,
                         kernel=kernel_text(layer) + " T")
    if isinstance(layer, rules.CONVS) and info.role in ("depthwise", "grouped"):
        # each output channel reads the a = C_in / groups channels of its own conv group
        ka = int(np.prod(layer.kernel_size)) * int(layer.kernel.shape[-2])
        return LayerCost(p_o=ka + int(layer.use_bias), pk_o=ka, m_o=ka * pos, act=pos,
                         kernel=f"{kernel_text(layer)} g{int(layer.groups)}")
    if isinstance(layer, rules.CONVS):
        k = int(np.prod(layer.kernel_size)) / int(layer.groups)
        return LayerCost(p_io=k, p_o=int(layer.use_bias), m_io=k * pos, act=pos,
                         kernel=kernel_text(layer))
    if isinstance(layer, L.Dense):
        # a Dense on an (N, H, W, C) tensor is applied at every position
        return LayerCost(p_io=1, p_o=int(layer.use_bias), m_io=info.in_positions, act=pos)
    return weights_cost(info)


def kernel_text(layer) -> str:
    return "x".join(str(int(k)) for k in layer.kernel_size)


def attention_cost(info) -> LayerCost:
    """``MultiHeadAttention``: projections, scores, weighted sum and output (module docstring)."""
    layer, shapes = info.layer, info.call_shapes
    heads, key_size = int(layer.num_heads), int(layer.key_dim)
    value_size = int(layer.value_dim or layer.key_dim)
    query, key, value = shapes["query"], shapes["key"], shapes["value"]
    n_q, n_k = rules.positions(query), rules.positions(key)
    d_q, d_k, d_v = rules.channels(query), rules.channels(key), rules.channels(value)
    out = layer.get_config().get("output_shape")
    d_o = d_q if out is None else int(np.prod(out if isinstance(out, (tuple, list)) else [out]))
    rank = len(query)
    axes = layer.get_config().get("attention_axes")
    axes = range(1, rank - 1) if axes is None else [a % rank for a in np.atleast_1d(axes)]
    outer = int(np.prod([int(query[a]) for a in range(1, rank - 1) if a not in axes]))
    projections = n_q * d_q * heads * key_size + n_k * d_k * heads * key_size + \
        n_k * d_v * heads * value_size
    attend = heads * (key_size + value_size) * n_q * n_k // outer
    output = n_q * heads * value_size * d_o
    kernels = (d_q + d_k) * heads * key_size + d_v * heads * value_size + heads * value_size * d_o
    return LayerCost(p_c=int(layer.count_params()), pk_c=kernels, m_c=projections + attend + output,
                     act=info.out_positions, kernel=f"{heads} heads x {key_size}")


def weights_cost(info) -> LayerCost | None:
    """Any other layer: its stored numbers, per output channel where a weight's last axis is the
    channel axis (batch norm's gamma, beta, moving mean and variance; a PReLU's slopes), else as a
    constant (a ``Normalization``'s sample count, anything inside a frozen layer)."""
    weights = getattr(info.layer, "weights", None) or []
    if not weights:
        return None
    width = rules.channels(info.out_shape)
    per_channel = constant = 0.0
    for w in weights:
        shape = tuple(int(d) for d in w.shape)
        size = int(np.prod(shape)) if shape else 1
        if shape and shape[-1] == width and info.role == "channelwise":
            per_channel += size / width
        else:
            constant += size
    return LayerCost(p_o=per_channel, p_c=constant)
