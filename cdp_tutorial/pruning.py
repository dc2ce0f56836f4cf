"""Algorithm 1: derive a smaller architecture that meets a complexity budget, before any training.

The paper's loop, for a model :math:`M`, a mode (params / FLOPs / memory), a required complexity
:math:`C` and a per-iteration fraction :math:`p`::

    while C(M) > C:
        recompute every prunable layer's complexity X_l and its weight w_l = X_l / sum_j X_j
        draw one layer l with probability w_l
        remove p of layer l's filters (at random)
    return the architecture of M          # then train it once, from scratch

:func:`plan_pruning` runs this loop on *shapes only*: a plan is a mapping from layer names to
filter counts, and every complexity is re-counted from the widths by
:class:`cdp_tutorial.complexity.CostModel` in microseconds, with no Keras model rebuilt per step.
:func:`cdp_tutorial.apply_plan` then turns the plan into a real, smaller Keras model.

Which filters are removed does not matter for the architecture (the pruned model is trained from
scratch), so the plan records only how many survive; :func:`cdp_tutorial.apply_plan` picks the
surviving filters at random, seeded, when you ask it to keep weights.

**Coupled channels.** Convs whose outputs meet at an ``Add`` (a ResNet's last bottleneck conv and
its shortcut; a MobileNetV2 block's projection and the block before it) must keep one width. The
paper leaves residual connections unpruned, and so do we by default (``coupled="skip"``); with
``coupled="tie"`` each such group is one unit that shrinks as a whole, with the complexity of all
its convs. Depthwise convs follow their input; dense layers are never pruned.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cdp_tutorial.checks import (check_choice, check_fraction, check_int, check_model, check_number,
                                 check_seed)
from cdp_tutorial.complexity import CostModel, Totals, bytes_per_element_of
from cdp_tutorial.graph import analyse
from cdp_tutorial.latency.planning import amount_text, latency_budget, latency_predictor, table_for
from cdp_tutorial.plans import HISTORY_COLUMNS, PruningPlan
from cdp_tutorial.reachability import explain_floor, target_text
from cdp_tutorial.sampling import normalize_mode, sample_layer, selection_probabilities

COUPLED_CHOICES = ("skip", "tie")


class PruningProblem:
    """A model seen as a set of prunable units (layers, or tied groups) and a cost model.

    This is the shared machinery behind :func:`plan_pruning`, :func:`plan_uniform` and
    :func:`layer_weights`; notebooks use it to show the loop step by step.

    Attributes
    ----------
    unit_names : list of str
        One name per prunable unit (a tied group is named by its first conv, "+N tied").
    unit_layers : list of list of str
        The conv layers whose filters each unit counts.
    baseline_widths : numpy.ndarray
        The width of every channel group (prunable or not), in the cost model's order.
    min_widths : numpy.ndarray
        The fewest filters each unit may keep (``round_to``, ``min_keep``).
    """

    def __init__(self, model, coupled: str = "skip", bytes_per_element=4, round_to: int = 1,
                 ignored_layers=(), min_keep=None, memory: str = "stored", latency_table=None,
                 input_shape=None):
        # what it was made with: the unreachable-target message asks what other options reach
        self.options = {k: v for k, v in locals().items() if k not in ("self", "model")}
        check_choice(coupled, "coupled", COUPLED_CHOICES)
        round_to = check_int(round_to, "round_to", minimum=1)  # 1 = no rounding
        self.graph = analyse(model, input_shape)
        ignored = self.ignored = self._check_ignored(ignored_layers)
        self.costs = CostModel(self.graph, bytes_per_element_of(bytes_per_element), memory)
        # mode "latency": a measured table prices every layer (cdp_tutorial.latency), else None
        self.latency = None if latency_table is None else latency_predictor(latency_table, model, self.costs)
        self.coupled = coupled
        self.round_to = int(round_to)
        self.baseline_widths = self.costs.baseline_widths.copy()
        column = {g: j for j, g in enumerate(self.costs.group_ids)}
        row = {name: i for i, name in enumerate(self.costs.layer_names)}
        groups = [g for g in self.graph.prunable_groups(coupled) if not ignored & set(g.producers)]
        if not groups:
            raise ValueError(
                "the model has no prunable conv layer: Algorithm 1 prunes Conv2D/SeparableConv2D "
                "filters, and none is free to shrink here (dense layers, the model's output and, "
                f"with coupled={coupled!r}, channels tied by an Add are left alone"
                + (f", and ignored_layers={sorted(ignored)})" if ignored else ")")
            )
        self.unit_names = [g.name for g in groups]
        self.unit_layers = [list(g.producers) for g in groups]
        self.unit_columns = np.array([column[g.id] for g in groups])
        # unit complexity = sum of its producers' layer complexities
        self.unit_matrix = np.zeros((len(groups), len(self.costs.layer_names)))
        for u, g in enumerate(groups):
            for name in g.producers:
                self.unit_matrix[u, row[name]] = 1.0
        # a unit shrinks in multiples of round_to and of its block (a grouped conv's channels per group)
        self.unit_multiples = np.array([math.lcm(self.round_to, g.block) for g in groups])
        base, step = self.baseline_widths[self.unit_columns], self.unit_multiples
        floors = np.array([self._floor(min_keep, layers) for layers in self.unit_layers])
        floors = np.ceil(base * floors / step) * step  # a multiple of round_to (and block)
        self.min_widths = np.minimum(base, np.maximum(step, floors))

    def _check_ignored(self, ignored_layers) -> set:
        if isinstance(ignored_layers, str):
            ignored_layers = [ignored_layers]
        ignored = set(ignored_layers or ())
        convs = [n for n, info in self.graph.layers.items() if info.role == "producer"]
        unknown = sorted(ignored - set(convs))
        if unknown:
            raise ValueError(f"ignored_layers names {unknown}, which are not conv layers of this "
                             f"model; conv layers are e.g. {convs[:4]}")
        return ignored

    @staticmethod
    def _floor(min_keep, layers) -> float:
        """The kept fraction a unit may not go below: one number for all, or ``{layer: fraction}``."""
        if min_keep is None:
            return 0.0
        if isinstance(min_keep, dict):
            values = [min_keep[n] for n in layers if n in min_keep]
            return max((check_number(v, "min_keep", minimum=0, maximum=1) for v in values), default=0.0)
        return check_number(min_keep, "min_keep", minimum=0, maximum=1)

    # -- complexities ------------------------------------------------------------------------
    def totals(self, widths: np.ndarray) -> Totals:
        return self.costs.totals(widths)

    def total(self, widths: np.ndarray, mode: str) -> float:
        if mode == "latency":
            return self.latency.total_ms(widths)
        params, macs, memory = self.costs.layer_costs(widths)
        return float({"params": params, "flops": macs, "memory": memory}[mode].sum())

    def unit_complexities(self, widths: np.ndarray, mode: str, layer_costs=None) -> np.ndarray:
        """:math:`X_u` of every unit (0 for units already at their minimum width).

        ``layer_costs`` may pass ``self.costs.layer_costs(widths)`` if already computed.
        """
        if mode == "latency":  # a layer's predicted milliseconds (its block: conv + BN + ReLU [+ pool])
            per_layer = self.latency.layer_ms(widths)
        else:
            params, macs, memory = layer_costs or self.costs.layer_costs(widths)
            per_layer = {"params": params, "flops": macs, "memory": memory}[mode]
        x = self.unit_matrix @ per_layer
        x[widths[self.unit_columns] <= self.min_widths] = 0.0
        return x

    # -- one pruning step --------------------------------------------------------------------
    def shrink(self, width: int, step: float, multiple: int | None = None) -> int:
        """Width after removing ``step`` of ``width`` filters: at least one goes, at least
        ``round_to`` (or one) stay, and with ``round_to`` the result is a multiple of it.
        ``multiple`` overrides ``round_to`` (a unit's ``unit_multiples`` entry)."""
        n = self.round_to if multiple is None else int(multiple)
        new = math.floor(width * (1.0 - step) + 0.5)
        new = min(new, width - 1)
        if n > 1:
            new = (new // n) * n
        return int(max(new, min(n, width)))

    def widths_by_layer(self, widths: np.ndarray) -> dict[str, int]:
        """``{conv layer name: filters}`` for every conv of every prunable unit."""
        out = {}
        for layers, col in zip(self.unit_layers, self.unit_columns):
            for name in layers:
                out[name] = int(widths[col])
        return out

    def minimum_widths(self) -> np.ndarray:
        w = self.baseline_widths.copy()
        w[self.unit_columns] = self.min_widths
        return w


def layer_weights(model, mode, coupled: str = "skip", latency_table=None, input_shape=None) -> pd.Series:
    """Selection probability of every prunable conv layer of ``model`` for ``mode``, for teaching.

    Parameters
    ----------
    model : keras.Model
    mode : str
        ``"params"``/``"PA"``, ``"flops"``/``"FA"`` or ``"memory"``/``"MA"``.
    coupled : {"skip", "tie"}
        How convs tied by an ``Add`` are treated (see :func:`cdp_tutorial.plan_pruning`).
    latency_table : cdp_tutorial.latency.LatencyTable, optional
        Required by mode ``"LA"``: a layer's weight is then its block's share of the table's block
        sum (the fitted per-call and weight-size terms are left out).
    input_shape : tuple of int, optional
        The input size, for a model built on unknown sizes (see :func:`cdp_tutorial.profile`).

    Returns
    -------
    pandas.Series
        Indexed by layer name (a tied group by its first layer), summing to 1, in model order.

    Examples
    --------
    >>> from cdp_tutorial.models import vgg16
    >>> w = layer_weights(vgg16(), "flops")
    >>> float(round(w.sum(), 6))
    1.0
    """
    mode = normalize_mode(mode)
    problem = PruningProblem(model, coupled=coupled, latency_table=table_for(mode, latency_table),
                             input_shape=input_shape)
    x = problem.unit_complexities(problem.baseline_widths, mode)
    return pd.Series(selection_probabilities(x), index=problem.unit_names, name=f"w ({mode})")


# --------------------------------------------------------------------------------------------
# Algorithm 1
# --------------------------------------------------------------------------------------------
def _resolve_budget(problem, mode, target, budget):
    baseline = problem.total(problem.baseline_widths, mode)
    if (target is None) == (budget is None):
        raise ValueError(
            "give exactly one of target (a fraction of the baseline, e.g. target=0.3) or "
            + ("latency_ms (a budget in milliseconds of predicted latency)" if mode == "latency" else
               "budget (an absolute number of parameters, MACs or bytes)")
        )
    if target is not None:
        target = check_fraction(target, "target")
        return target, target * baseline, baseline
    budget = check_number(budget, "budget", minimum=0, include_minimum=False)
    if budget >= baseline:
        raise ValueError(
            f"budget {amount_text(budget, mode)} is not below the model's {mode} total {amount_text(baseline, mode)}: "
            "nothing to prune"
        )
    return None, float(budget), baseline


def _check_reachable(problem, mode, budget, baseline):
    lowest = problem.total(problem.minimum_widths(), mode)
    if lowest > budget:
        raise ValueError(
            f"{mode} budget {amount_text(budget, mode)} ({budget / baseline:.2%} of baseline) is unreachable: with "
            f"every prunable layer at its minimum width the model still has {amount_text(lowest, mode)} "
            f"({lowest / baseline:.2%}); the lowest reachable target is {target_text(lowest / baseline)}"
            + explain_floor(problem, mode)
        )


def _pruning_problem(model, mode, target, budget, latency_ms, *, latency_table, **options):
    """Check the model and mode, build the problem, resolve and check the budget (both planners)."""
    check_model(model)
    mode = normalize_mode(mode)
    budget = latency_budget(mode, budget, latency_ms)
    problem = PruningProblem(model, latency_table=table_for(mode, latency_table), **options)
    target, budget, baseline = _resolve_budget(problem, mode, target, budget)
    _check_reachable(problem, mode, budget, baseline)
    return mode, problem, target, budget, baseline


def plan_pruning(model, mode, target=None, *, budget=None, step: float = 0.1, seed=None,
                 coupled: str = "skip", round_to: int = 1, bytes_per_element=4,
                 ignored_layers=(), min_keep=None, memory: str = "stored", latency_table=None,
                 latency_ms=None, input_shape=None) -> PruningPlan:
    """Run the paper's Algorithm 1 on ``model``'s shapes and return a :class:`PruningPlan`.

    Parameters
    ----------
    model : keras.Model
        The unpruned model (Sequential or functional, one input).
    mode : str
        ``"params"``/``"PA"``, ``"flops"``/``"FA"``, ``"memory"``/``"MA"`` (any case), or
        ``"latency"``/``"LA"``: latency-aware, priced by ``latency_table`` (not in the paper; see
        :mod:`cdp_tutorial.latency`).
    target : float, optional
        Required complexity as a fraction of the baseline, in (0, 1): ``0.3`` keeps 30 %. In mode
        LA, a fraction of the unpruned model's *predicted* latency.
    budget : float, optional
        Required complexity as an absolute number instead (parameters, MACs or bytes).
        Give exactly one of ``target`` and ``budget``.
    step : float, default 0.1
        :math:`p`, the fraction of the chosen layer's filters removed per iteration, in (0, 1).
    seed : int, optional
        Seeds the layer draws. ``None`` draws a fresh seed, which the plan records so the run
        can be repeated.
    coupled : {"skip", "tie"}, default "skip"
        Convs tied by an ``Add``: leave them unpruned (the paper) or prune each tied group as one unit.
    round_to : int, default 1
        Keep widths multiples of this (e.g. 8 for hardware-friendly widths); a layer keeps at least
        ``round_to`` filters (or its original count, if smaller).
    bytes_per_element : int or str, default 4
        Precision for the memory count (``"fp32"``, ``"fp16"``, ``"int8"``).
    ignored_layers : list of str, optional
        Conv layers to leave at full width (with the convs tied to them), as Torch-Pruning's
        ``ignored_layers``: e.g. a first layer or a detection head you want intact.
    min_keep : float or dict, optional
        A floor: each prunable layer keeps at least this fraction of its filters (``0.25``), or
        ``{layer name: fraction}`` for some layers only. A tied group takes its largest floor.
    memory : {"stored", "eq5"}, default "stored"
        What the memory count includes (see :mod:`cdp_tutorial.complexity`); recorded in the plan.
    input_shape : tuple of int, optional
        The input size to count at (no batch axis), for a model built on unknown sizes such as
        ``keras.Input((None, None, 3))``: ``(224, 224, 3)``. See :func:`cdp_tutorial.profile`.
    latency_table : cdp_tutorial.latency.LatencyTable, optional
        Mode LA only (and required there): the measured per-layer latency that prices every step.
    latency_ms : float, optional
        Mode LA: an absolute budget in milliseconds of predicted latency, instead of ``target``.

    Returns
    -------
    PruningPlan

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model.
    ValueError
        For an unknown mode, a target outside (0, 1), a step outside (0, 1), a model with no prunable
        conv, or a budget below what the model can reach (the message names the lowest reachable target),
        an ``ignored_layers`` name that is not a conv layer, or a ``min_keep`` outside [0, 1];
        mode LA without a latency table (or a table without mode LA), or a table that does not cover
        the model's layers or widths.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> plan = cdp.plan_pruning(cdp.models.vgg16(), "FA", target=0.3, seed=0)
    >>> plan.final.macs <= 0.3 * plan.baseline.macs
    True
    """
    step = check_fraction(step, "step")
    seed = check_seed(seed, allow_none=True)
    mode, problem, target, budget, baseline = _pruning_problem(
        model, mode, target, budget, latency_ms, coupled=coupled, bytes_per_element=bytes_per_element,
        round_to=round_to, ignored_layers=ignored_layers, min_keep=min_keep, memory=memory,
        latency_table=latency_table, input_shape=input_shape)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    rng = np.random.default_rng(seed)

    widths = problem.baseline_widths.copy()
    rows = []
    costs = problem.costs.layer_costs(widths)  # (params, macs, memory) per layer, reused below
    index = {"params": 0, "flops": 1, "memory": 2}.get(mode)  # None: latency, priced by the table
    current = costs[index].sum() if index is not None else problem.total(widths, mode)
    while current > budget:
        probabilities = selection_probabilities(problem.unit_complexities(widths, mode, costs))
        unit = sample_layer(probabilities, rng)
        col = problem.unit_columns[unit]
        before = int(widths[col])
        widths[col] = max(problem.shrink(before, step, problem.unit_multiples[unit]),
                          problem.min_widths[unit])
        costs = problem.costs.layer_costs(widths)
        params, macs, memory = (float(c.sum()) for c in costs)
        current = (params, macs, memory)[index] if index is not None else problem.total(widths, mode)
        rows.append((len(rows) + 1, problem.unit_names[unit], float(probabilities[unit]), before,
                     int(widths[col]), round(params), round(macs), round(memory),
                     current / baseline))

    return _make_plan(model, problem, mode, target, budget, step, seed, widths,
                      pd.DataFrame(rows, columns=HISTORY_COLUMNS), method="cdp")


def plan_uniform(model, mode, target=None, *, budget=None, coupled: str = "skip",
                 round_to: int = 1, bytes_per_element=4, ignored_layers=(),
                 min_keep=None, memory: str = "stored", latency_table=None,
                 latency_ms=None, input_shape=None) -> PruningPlan:
    """Uniform width scaling at the same budget: every prunable layer keeps the same fraction.

    The baseline the paper leaves open: is complexity-driven allocation better than simply making
    every layer narrower? Finds (by bisection) the largest multiplier :math:`m` such that widths
    ``max(min, round(m * w))`` meet the budget. Arguments as in :func:`plan_pruning`.
    """
    mode, problem, target, budget, baseline = _pruning_problem(
        model, mode, target, budget, latency_ms, coupled=coupled, bytes_per_element=bytes_per_element,
        round_to=round_to, ignored_layers=ignored_layers, min_keep=min_keep, memory=memory,
        latency_table=latency_table, input_shape=input_shape)
    cols, base = problem.unit_columns, problem.baseline_widths[problem.unit_columns]

    def scaled(m):
        w = problem.baseline_widths.copy()
        n = problem.unit_multiples
        new = np.floor(base * m / n + 0.5) * n
        w[cols] = np.minimum(base, np.maximum(new, problem.min_widths))
        return w

    low, high = 0.0, 1.0  # total(scaled(low)) <= budget always holds (minimum widths)
    for _ in range(60):
        mid = (low + high) / 2
        if problem.total(scaled(mid), mode) <= budget:
            low = mid
        else:
            high = mid
    return _make_plan(model, problem, mode, target, budget, None, None, scaled(low),
                      pd.DataFrame(columns=HISTORY_COLUMNS), method="uniform")


def _make_plan(model, problem, mode, target, budget, step, seed, widths, history, method):
    plan = PruningPlan(
        model_name=model.name, mode=mode, target=target, budget=budget, step=step, seed=seed,
        coupled=problem.coupled, round_to=problem.round_to,
        bytes_per_element=problem.costs.bytes_per_element, memory=problem.costs.memory,
        widths=problem.widths_by_layer(widths),
        baseline_widths=problem.widths_by_layer(problem.baseline_widths),
        baseline=problem.totals(problem.baseline_widths), final=problem.totals(widths),
        history=history, method=method,
        tied=[layers for layers in problem.unit_layers if len(layers) > 1],
    )
    if problem.latency is not None:  # mode LA: the predicted milliseconds before and after
        plan.latency = problem.latency.plan_record(problem.baseline_widths, widths)
    return plan
