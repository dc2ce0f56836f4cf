r"""The three complexities of a CNN — parameters, FLOPs and memory — counted from layer shapes.

For a convolution with a :math:`K\times K` kernel, :math:`C_{l-1}` input channels, :math:`C_l`
filters and an :math:`H_l\times W_l` output (the paper's Eqs. 7, 3 and 5, as we read them):

.. math::

    P_l = K^2\,C_{l-1}\,C_l \;(+\,C_l \text{ with bias})                      \qquad\text{(Eq. 7)}

    F_l = K^2\,C_{l-1}\,C_l\,H_l\,W_l \quad\text{multiply-accumulates (MACs)}  \qquad\text{(Eq. 3)}

    M_l = b\,\bigl(K^2\,C_{l-1}\,C_l + H_l\,W_l\,C_l\bigr) \quad\text{bytes}   \qquad\text{(Eq. 5)}

with :math:`b = 4` bytes per element for fp32 ("the 4 refers to the number of bytes required to
store in a 32-bit system"); ``bytes_per_element`` changes it for fp16 (2) or int8 (1) deployment.

**Which weights memory counts.** Eq. 5 as we read it (the typeset equation is lost) has kernel
weights only. By default
(``memory="stored"``) we count every number the layer stores, :math:`M_l = b\,(P_l + H_l W_l C_l)`:
biases too, and batch norm's four vectors as their own layer, so the memory total is what the
unfolded Keras model keeps (weights plus one activation map per layer). ``memory="eq5"`` counts
Eq. 5 to the letter: kernel weights and activations of conv and dense layers; biases and
normalisation layers add nothing (as after folding batch norm into the conv before it). The two
differ by 0.1-1.7 % on the four CIFAR models (notebook 01, section 5); the mode is recorded in
every plan, and the notebooks use the default.

**MACs and FLOPs.** The pruning literature's "FLOPs" (313 M for VGG-16 on CIFAR-10) are
multiply-accumulates. Tools that count a multiply and an add separately report
:math:`\text{FLOPs} = 2 \times \text{MACs}`. We report both, labelled; our tables and the
FLOPs-aware mode use MACs (that the paper does too is our inference: its Eq. 3 is lost and its text
mentions no factor 2; layer shares and reductions in % are the same either way).

**Other layers.** Depthwise convs count :math:`K^2 C H W` MACs (one filter per channel, times the
depth multiplier); separable convs count their depthwise and pointwise parts; grouped convs divide
by the group count; dense layers count ``in × out`` (times the positions they are applied at);
``MultiHeadAttention`` counts its projections, scores, weighted sum and output projection (the
formula is in :mod:`cdp_tutorial.layer_costs`). Every other layer with weights (batch, layer and
group norm, ``Normalization``, ``PReLU`` …) contributes its parameters, per channel where they are
per channel, so ``totals.params == model.count_params()`` for every model, but no MACs and no
activation memory (batch norm is folded into the preceding conv at deployment). Activations,
pooling, merges and reshapes cost nothing here. A layer whose arithmetic we cannot see (recurrent
layers, custom layers with weights) has its parameters counted, its MACs counted as zero, and is
named in one warning.

**Unknown input sizes.** MACs and activation memory depend on the spatial sizes, so a model built
on ``keras.Input((None, None, 3))`` is counted at the size you give: ``profile(model,
input_shape=(64, 64, 3))``; without one, :func:`profile` refuses it and says so.

Every count is a function of the channel widths, :math:`\text{cost} = a\,C_{in}C_{out} + b\,C_{out} + c\,C_{in} + d`,
which is what lets Algorithm 1 (:mod:`cdp_tutorial.pruning`) re-count a whole model in microseconds
after each pruning step, without building a Keras model.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from cdp_tutorial.checks import check_choice
from cdp_tutorial.graph import ChannelGraph, analyse
from cdp_tutorial.layer_costs import layer_cost


#: Named precisions for ``bytes_per_element``.
PRECISIONS = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "int8": 1}


def bytes_per_element_of(value) -> int:
    """Turn ``4``, ``"fp32"``, ``"fp16"``, ``"int8"`` … into a byte count; reject anything else."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key not in PRECISIONS:
            raise ValueError(
                f"unknown precision {value!r}; use a positive number of bytes or one of "
                f"{sorted(set(PRECISIONS))}"
            )
        return PRECISIONS[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"bytes_per_element must be a positive integer or one of {sorted(set(PRECISIONS))}, "
            f"got {value!r}"
        )
    return int(value)


#: What the memory count includes: every stored number (default) or Eq. 5's kernel weights only.
MEMORY_CHOICES = ("stored", "eq5")

#: The ``Totals`` field each pruning mode budgets; FLOPs-aware counts MACs (the literature's "FLOPs").
MODE_QUANTITY = {"params": "params", "flops": "macs", "memory": "memory_bytes"}


@dataclass(frozen=True)
class Totals:
    """Whole-model complexity. ``flops`` is always ``2 * macs``."""

    params: int
    macs: int
    flops: int
    memory_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)

    def mode_total(self, mode: str) -> int:
        """The total a pruning mode budgets, in that mode's unit (see :data:`MODE_QUANTITY`).

        ``"flops"`` gives **MACs** (``self.macs``), the literature's FLOPs (the paper's, we infer);
        ``self.flops`` is ``2 * macs``, for comparison with tools that count multiply and add apart.

        >>> Totals(params=10, macs=100, flops=200, memory_bytes=40).mode_total("flops")
        100
        """
        return getattr(self, MODE_QUANTITY[mode])

    def of(self, mode: str) -> int:
        """Deprecated name of :meth:`mode_total` (kept so older notebooks run)."""
        return self.mode_total(mode)


_COLUMNS = ["name", "type", "kernel", "in_channels", "out_channels", "output_size",
            "params", "macs", "flops", "memory_bytes"]


class CostModel:
    """All counted layers of a model, evaluated for any channel widths at once (vectorised).

    Parameters
    ----------
    graph : ChannelGraph
        From :func:`cdp_tutorial.graph.analyse`.
    bytes_per_element : int
        Bytes per stored weight and activation (4 for fp32).
    """

    def __init__(self, graph: ChannelGraph, bytes_per_element: int = 4, memory: str = "stored"):
        graph.require_sizes()
        self.graph = graph
        self.bytes_per_element = bytes_per_element
        self.memory = check_choice(memory, "memory", MEMORY_CHOICES)
        self.group_ids = list(graph.groups)  # root ids, model order
        col = {g: j for j, g in enumerate(self.group_ids)}
        self.baseline_widths = np.array([graph.groups[g].width for g in self.group_ids], float)

        names, costs, a_in, a_out, self.unsupported = [], [], [], [], []
        for info in graph.layers.values():
            cost = layer_cost(info)
            if info.role == "unknown" and getattr(info.layer, "weights", None):
                self.unsupported.append(f"{info.name} ({type(info.layer).__name__})")
            if cost is None:
                continue
            row_in = np.zeros(len(col))
            row_out = np.zeros(len(col))
            if info.in_layout is not None:
                for g, c in info.in_layout.coefficients(graph.find).items():
                    row_in[col[g]] += c
            for g, c in info.out_layout.coefficients(graph.find).items():
                row_out[col[g]] += c
            names.append(info.name)
            costs.append(cost)
            a_in.append(row_in)
            a_out.append(row_out)
        self.layer_names = names
        self.costs = costs
        self.a_in = np.array(a_in).reshape(len(names), len(col))
        self.a_out = np.array(a_out).reshape(len(names), len(col))
        get = lambda field: np.array([getattr(c, field) for c in costs], float)  # noqa: E731
        self._p = [get(f) for f in ("p_io", "p_o", "p_i", "p_c")]
        self._pk_o, self._pk_c = get("pk_o"), get("pk_c")
        self._m = [get(f) for f in ("m_io", "m_o", "m_i", "m_c")]
        self._act = get("act")

    def layer_costs(self, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer ``(params, macs, memory_bytes)`` for group widths ``widths`` (in ``group_ids`` order)."""
        cin = self.a_in @ widths
        cout = self.a_out @ widths
        p_io, p_o, p_i, p_c = self._p
        m_io, m_o, m_i, m_c = self._m
        params = p_io * cin * cout + p_o * cout + p_i * cin + p_c
        macs = m_io * cin * cout + m_o * cout + m_i * cin + m_c
        stored = params if self.memory == "stored" else (
            p_io * cin * cout + p_i * cin + self._pk_o * cout + self._pk_c)  # Eq. 5: kernel weights only
        memory = self.bytes_per_element * (stored + self._act * cout)
        return params, macs, memory

    def totals(self, widths: np.ndarray | None = None) -> Totals:
        params, macs, memory = self.layer_costs(self.baseline_widths if widths is None else widths)
        macs_total = int(round(macs.sum()))
        return Totals(int(round(params.sum())), macs_total, 2 * macs_total, int(round(memory.sum())))

    def table(self, widths: np.ndarray | None = None) -> pd.DataFrame:
        """The per-layer table of :class:`ComplexityReport` for ``widths``."""
        w = self.baseline_widths if widths is None else widths
        params, macs, memory = self.layer_costs(w)
        cin, cout = self.a_in @ w, self.a_out @ w
        rows = []
        for i, name in enumerate(self.layer_names):
            info = self.graph.layers[name]
            shape = info.out_shape
            size = "x".join(str(int(d)) for d in shape[1:-1]) if len(shape) > 2 else "1"
            rows.append((name, type(info.layer).__name__, self.costs[i].kernel,
                         int(round(cin[i])), int(round(cout[i])), size,
                         int(round(params[i])), int(round(macs[i])), 2 * int(round(macs[i])),
                         int(round(memory[i]))))
        df = pd.DataFrame(rows, columns=_COLUMNS)
        for col in ("params", "macs", "memory_bytes"):
            total = df[col].sum()
            df[col.replace("_bytes", "") + "_share"] = df[col] / total if total else 0.0
        return df


@dataclass
class ComplexityReport:
    """What :func:`profile` returns.

    Attributes
    ----------
    layers : pandas.DataFrame
        One row per counted layer: ``name, type, kernel, in_channels, out_channels, output_size,
        params, macs, flops, memory_bytes`` and each layer's share of the total
        (``params_share, macs_share, memory_share``).
    totals : Totals
        ``params, macs, flops (= 2 × macs), memory_bytes`` of the whole model.
    bytes_per_element : int
        The precision memory was counted at.
    unsupported : list of str
        Layers with weights that were counted as zero.
    """

    layers: pd.DataFrame
    totals: Totals
    bytes_per_element: int
    unsupported: list

    def summary(self) -> str:
        t = self.totals
        return (f"params {t.params:,} | MACs {t.macs:,} (FLOPs = 2 x MACs = {t.flops:,}) | "
                f"memory {t.memory_bytes / 2**20:,.2f} MiB at {self.bytes_per_element} B/element")

    def __repr__(self) -> str:
        return f"ComplexityReport({self.summary()}, {len(self.layers)} layers)"


def profile(model, bytes_per_element=4, memory: str = "stored", *, input_shape=None) -> ComplexityReport:
    """Count the parameters, MACs, FLOPs and memory of every layer of a Keras model.

    Parameters
    ----------
    model : keras.Model
        A built Sequential or functional model (one input) of standard layers.
    bytes_per_element : int or str, default 4
        Bytes per stored number for the memory count: ``4``/``"fp32"``, ``2``/``"fp16"``,
        ``1``/``"int8"``.
    memory : {"stored", "eq5"}, default "stored"
        ``"stored"``: weights (biases and batch norm included) plus activations; ``"eq5"``: the
        paper's Eq. 5 as we read it, kernel weights plus activations of conv and dense layers only.
    input_shape : tuple of int, optional
        The input size to count at, without the batch axis, for a model built on unknown sizes
        (``keras.Input((None, None, 3))``): ``(224, 224, 3)``. It must agree with every size the
        model fixes. MACs and memory grow with the spatial size; parameters do not.

    Returns
    -------
    ComplexityReport
        ``.layers`` (a per-layer DataFrame) and ``.totals`` (``params, macs, flops, memory_bytes``).

    Raises
    ------
    TypeError
        If ``model`` is not a ``keras.Model``.
    ValueError
        If the model is not built, has several inputs, or ``bytes_per_element`` or ``memory`` is
        invalid; if its input sizes are unknown and no ``input_shape`` is given (the message says
        what to pass), or ``input_shape`` disagrees with the model's input.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> report = cdp.profile(cdp.models.vgg16())
    >>> report.totals.macs  # multiply-accumulates for one 32x32x3 image
    313725952
    """
    bpe = bytes_per_element_of(bytes_per_element)
    costs = CostModel(analyse(model, input_shape), bpe, memory)
    if costs.unsupported:
        warnings.warn(
            "MACs counted as zero (layer type not supported by the complexity counter; its "
            "parameters are counted): "
            + ", ".join(costs.unsupported),
            stacklevel=2,
        )
    return ComplexityReport(costs.table(), costs.totals(), bpe, costs.unsupported)
