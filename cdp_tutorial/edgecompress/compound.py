r"""Compound shrinking: depth, width and input resolution shrunk together to a MAC budget.

EdgeCompress (Kong et al., IEEE TCAD 2023) shrinks the three dimensions "according to their
contribution to accuracy and computation"; its public code is evaluation-only, so the method here is
ours, written to be cheap enough for a notebook:

1. **Probe** (:func:`measure_contributions`): proxy-train the unshrunk model and one shrunk step per
   dimension (drop ``k`` blocks; scale every width; lower the resolution) briefly and measure
   each one's validation accuracy :math:`a_d` and MACs :math:`M_d`. A dimension's *cost* is the
   accuracy it loses per e-fold of computation it saves,

   .. math:: c_d = \frac{\max(a_0 - a_d,\ 0)}{\ln(M_0 / M_d)}.

   A probe that *gained* accuracy is clipped to cost 0: a first-order model cannot credit shrinking
   with making a network better (at small scale such gains are training noise or a smaller network
   learning faster), only with costing nothing measurable. The table keeps the raw change.

2. **Search** (:func:`search_compound`): for every depth ``k`` and resolution ``r`` on a grid, the
   width that meets the budget :math:`B` follows (Algorithm 1 or uniform scaling on shapes, no
   training). The MAC reduction splits into three log-shares, and the predicted accuracy loss is

   .. math:: \hat L(k, r) = c_\text{depth} \ln\frac{M_0}{M(k, 32)} + c_\text{res} \ln\frac{M(k, 32)}{M(k, r)}
             + c_\text{width} \max\Big(\ln\frac{M(k, r)}{B},\ 0\Big).

   The shares add up to :math:`\ln(M_0/B)` unless depth and resolution alone already go below the
   budget; then the width share is 0 and they add up to more.

   The candidate with the smallest :math:`\hat L` wins (a first-order model: each dimension's cost
   is assumed constant along it and independent of the others). Candidates that tie (dimensions
   whose cost is 0 are interchangeable) go to the one that spreads the saving most evenly, the
   smallest largest share: when the probes cannot tell dimensions apart, balance them, as
   EfficientNet's compound scaling does (Tan & Le, ICML 2019, Sec. 3.3). A linear model puts the
   whole saving on the cheapest dimension, so search each dimension's whole range (e.g. every
   second depth and 32/24/16 px): a choice at the grid's edge is then the architecture's limit.

Cost: ``1 + 3`` proxy trainings of ``epochs`` each (trained as long as the final models, the probes
*are* final models: the unshrunk probe is the baseline), plus ``len(depths) x len(resolutions)`` model
builds and width plans on shapes (about a second each at full size on a 2-core CPU). MACs are those
of the *full-size* architecture, whatever width the models are trained at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from cdp_tutorial.checks import check_choice, check_int, check_number, check_seed
from cdp_tutorial.complexity import profile
from cdp_tutorial.edgecompress.images import at_resolution, class_probabilities
from cdp_tutorial.models import build_model, droppable_blocks
from cdp_tutorial.pruning import plan_pruning, plan_uniform
from cdp_tutorial.training import train

__all__ = ["CompoundConfig", "CompoundSearch", "DIMENSIONS", "Probes", "compound_config", "measure_contributions",
           "search_compound", "train_config"]

DIMENSIONS = ("depth", "width", "resolution")
TIE_TOLERANCE = 1e-9  # predicted losses closer than this are a tie (float round-off)
WIDTH_METHODS = ("cdp", "uniform")


@dataclass(frozen=True)
class CompoundConfig:
    """One point in depth x width x resolution: what to build, and what it costs at full size.

    Attributes
    ----------
    model : str
        ``"vgg16"``, ``"alexnet"``, ``"resnet50"`` or ``"mobilenetv2"``.
    depth : int
        Blocks dropped: the first ``depth`` of :func:`cdp_tutorial.models.droppable_blocks`.
    resolution : int
        Input height and width.
    widths : dict
        ``{conv layer: filters}`` of the full-size architecture (after the width plan).
    macs, params : int
        Full-size MACs per image and parameters.
    width_method : str
        ``"cdp"`` (Algorithm 1, FLOPs-aware), ``"uniform"``, ``"multiplier x0.75"`` or ``"none"``.
    """

    model: str
    depth: int
    resolution: int
    widths: dict = field(repr=False)
    macs: int
    params: int
    width_method: str

    @property
    def drop_blocks(self) -> tuple[str, ...]:
        """The block names the builder leaves out."""
        return droppable_blocks(self.model)[:self.depth]

    @property
    def label(self) -> str:
        """Short description, e.g. ``"depth -3, width cdp, 24 px"``."""
        return f"depth -{self.depth}, width {self.width_method}, {self.resolution} px"

    def build(self, num_classes: int = 10, train_width: float = 1.0) -> keras.Model:
        """Build the model, every width scaled by ``train_width`` (0.25: the quick profile's).

        The caller seeds initial weights (``keras.utils.set_random_seed``) before calling.
        """
        m = check_number(train_width, "train_width", minimum=0, include_minimum=False, maximum=1)
        widths = {name: max(1, round(w * m)) for name, w in self.widths.items()}
        return build_model(self.model, num_classes=num_classes, input_shape=(self.resolution, self.resolution, 3),
                           widths=widths, drop_blocks=self.drop_blocks)


@dataclass(frozen=True)
class CompoundSearch:
    """What :func:`search_compound` returns: the chosen configuration and every candidate.

    Attributes
    ----------
    chosen : CompoundConfig
    candidates : pandas.DataFrame
        One row per (depth, resolution): ``depth, resolution, macs_at_full_width, feasible,
        depth_share, resolution_share, width_share, largest_share, predicted_loss``.
    costs : dict
        ``{dimension: accuracy lost per e-fold of MACs}`` from the probe.
    """

    chosen: CompoundConfig
    candidates: pd.DataFrame
    costs: dict


@dataclass(frozen=True)
class Probes:
    """What :func:`measure_contributions` returns: the cost table and the trained probe models.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per probe (see :func:`measure_contributions`).
    configs, models : dict
        ``{dimension: CompoundConfig}`` and ``{dimension: trained keras.Model}``, with
        ``"none"`` for the unshrunk model. Trained with the final models' epochs, the probes are
        finished models too (the unshrunk probe *is* the baseline) and nothing is trained twice.
    """

    table: pd.DataFrame
    configs: dict = field(repr=False)
    models: dict = field(repr=False)


def _shaped_model(model: str, depth: int, resolution: int, num_classes: int) -> keras.Model:
    blocks = droppable_blocks(model)
    depth = check_int(depth, "depth", minimum=0, maximum=len(blocks))
    resolution = check_int(resolution, "resolution", minimum=8)
    return build_model(model, num_classes=num_classes, input_shape=(resolution, resolution, 3),
                       drop_blocks=blocks[:depth])


def compound_config(model: str, *, depth: int = 0, resolution: int = 32, budget=None, width_method="cdp",
                    width_multiplier=None, num_classes: int = 10, seed: int = 0) -> CompoundConfig:
    """Describe a shrunk network: drop ``depth`` blocks, set the resolution, then the widths.

    Parameters
    ----------
    model : str
        Network name (see :data:`cdp_tutorial.models.MODELS`).
    depth : int, default 0
        Blocks to drop, in :func:`cdp_tutorial.models.droppable_blocks` order.
    resolution : int, default 32
        Input size in pixels (at least 8).
    budget : float, optional
        MACs per image the full-size network must fit; the widths are then planned to meet it.
    width_method : {"cdp", "uniform"}, default "cdp"
        With a budget: Algorithm 1 (FLOPs-aware, seeded) or uniform width scaling.
    width_multiplier : float, optional
        Instead of a budget: every width times this, in (0, 1].
    num_classes : int, default 10
    seed : int, default 0
        Seed of Algorithm 1's layer draws.

    Returns
    -------
    CompoundConfig

    Raises
    ------
    ValueError
        Both ``budget`` and ``width_multiplier`` given; a budget the widths cannot reach at this
        depth and resolution (the message says the lowest reachable); a bad depth or resolution.

    Examples
    --------
    >>> config = compound_config("vgg16", depth=3, resolution=24, budget=60e6, width_method="uniform")
    >>> config.macs <= 60e6, config.drop_blocks
    (True, ('conv7', 'conv10', 'conv13'))
    """
    if budget is not None and width_multiplier is not None:
        raise ValueError("give a budget or a width_multiplier, not both")
    seed = check_seed(seed)
    shaped = _shaped_model(model, depth, resolution, num_classes)
    widths = {layer.name: layer.filters for layer in shaped.layers if isinstance(layer, keras.layers.Conv2D)}
    method = "none"
    if budget is not None:
        method = check_choice(width_method, "width_method", WIDTH_METHODS)
        budget = check_number(budget, "budget", minimum=0, include_minimum=False)
        if profile(shaped).totals.macs > budget:
            plan = (plan_pruning(shaped, "flops", budget=budget, seed=seed) if method == "cdp"
                    else plan_uniform(shaped, "flops", budget=budget))
            widths.update(plan.widths)
    elif width_multiplier is not None:
        m = check_number(width_multiplier, "width_multiplier", minimum=0, include_minimum=False, maximum=1)
        widths = {name: max(1, round(w * m)) for name, w in widths.items()}
        method = f"multiplier x{m:g}"
    built = build_model(model, num_classes=num_classes, input_shape=(resolution, resolution, 3),
                        widths=widths, drop_blocks=droppable_blocks(model)[:depth])
    totals = profile(built).totals
    return CompoundConfig(model=model, depth=depth, resolution=resolution, widths=widths, macs=totals.macs,
                          params=totals.params, width_method=method)


def train_config(config: CompoundConfig, data, *, train_width: float = 1.0, epochs: int = 3,
                 recipe="modern", batch_size=None, seed: int = 0):
    """Build ``config`` (seeded), train it on ``data`` at the config's resolution; return both.

    Returns
    -------
    model : keras.Model
    result : cdp_tutorial.training.TrainResult
        ``result.test_accuracy`` is on ``data``'s test split (the validation split for a
        :func:`~cdp_tutorial.edgecompress.images.holdout_validation` ``validation`` set).
    """
    seed = check_seed(seed)
    keras.utils.set_random_seed(seed)
    model = config.build(num_classes=data.num_classes, train_width=train_width)
    result = train(model, at_resolution(data, config.resolution), recipe, epochs=epochs,
                   batch_size=batch_size, seed=seed, verbose=0)
    return model, result


def measure_contributions(model: str, validation, *, depth: int = 3, width: float = 0.75, resolution: int = 24,
                          epochs: int = 3, train_width: float = 1.0, recipe="modern", batch_size=None,
                          seed: int = 0) -> Probes:
    """Proxy-train the unshrunk model and one shrunk step per dimension; measure what each costs.

    Parameters
    ----------
    model : str
        Network name.
    validation : Dataset
        Trains on its training split and scores on its test split: pass the ``validation`` set of
        :func:`~cdp_tutorial.edgecompress.images.holdout_validation`, never the real test split.
    depth, width, resolution : optional
        The probe step of each dimension: blocks dropped, width multiplier in (0, 1), pixels.
    epochs : int, default 3
        Proxy training length. As long as the final models', the probes double as final models;
        shorter is cheaper but noisier (one quick-profile epoch left every probe near chance, 9-14 %).
    train_width : float, default 1.0
        Width at which the probes are trained (0.25 in the quick profile).
    recipe, batch_size, seed
        As in :func:`cdp_tutorial.training.train`; every probe uses the same seed.

    Returns
    -------
    Probes
        ``.table`` has one row per probe: ``dimension`` (``"none"`` for the unshrunk model),
        ``setting``, ``macs`` (full size), ``accuracy`` (validation), ``log_macs_saved``
        :math:`\ln(M_0/M_d)`, ``accuracy_lost`` :math:`a_0 - a_d` (negative when shrinking gained
        accuracy), ``accuracy_lost_se`` (its paired standard error over the validation images:
        how far image sampling alone moves it; a second seed would show training noise too) and
        ``cost`` :math:`\max(a_0 - a_d, 0)/\ln(M_0/M_d)`; ``.models`` the trained probes.
    """
    check_number(width, "width", minimum=0, maximum=1, include_minimum=False, include_maximum=False)
    shapes = {"none": ("unshrunk", compound_config(model, num_classes=validation.num_classes)),
              "depth": (f"-{depth} blocks", compound_config(model, depth=depth, num_classes=validation.num_classes)),
              "width": (f"x{width:g}", compound_config(model, width_multiplier=width,
                                                       num_classes=validation.num_classes)),
              "resolution": (f"{resolution} px", compound_config(model, resolution=resolution,
                                                                 num_classes=validation.num_classes))}
    rows, models, correct = [], {}, {}
    for dimension, (setting, config) in shapes.items():
        models[dimension], result = train_config(config, validation, train_width=train_width, epochs=epochs,
                                                 recipe=recipe, batch_size=batch_size, seed=seed)
        probabilities = class_probabilities(models[dimension], at_resolution(validation, config.resolution))
        correct[dimension] = probabilities.argmax(axis=1) == validation.y_test
        rows.append({"dimension": dimension, "setting": setting, "macs": config.macs,
                     "accuracy": float(correct[dimension].mean())})
    table = pd.DataFrame(rows)
    base = table.iloc[0]
    table["log_macs_saved"] = [math.log(base.macs / m) for m in table.macs]
    table["accuracy_lost"] = base.accuracy - table.accuracy
    # paired: the same images, so per-image differences (1, 0 or -1) carry the sampling noise
    table["accuracy_lost_se"] = [float(np.std(correct["none"].astype(int) - correct[d].astype(int), ddof=1)
                                       / math.sqrt(len(correct[d]))) for d in table.dimension]
    table["cost"] = [max(lost, 0.0) / saved if saved > 0 else 0.0
                     for lost, saved in zip(table.accuracy_lost, table.log_macs_saved)]
    return Probes(table=table, configs={d: config for d, (_, config) in shapes.items()}, models=models)


def search_compound(model: str, budget, contributions: pd.DataFrame, *, depths=None,
                    resolutions=(32, 28, 24, 20, 16), width_method: str = "cdp", num_classes: int = 10,
                    seed: int = 0) -> CompoundSearch:
    """Choose depth and resolution by the probe's costs; the widths then meet ``budget``.

    Parameters
    ----------
    model : str
        Network name.
    budget : float
        MACs per image of the full-size architecture, below the unshrunk network's.
    contributions : Probes or pandas.DataFrame
        From :func:`measure_contributions` (its table's ``dimension`` and ``cost`` columns are used).
    depths : sequence of int, optional
        Blocks to try dropping; default every count from 0 to all droppable blocks.
    resolutions : sequence of int, default (32, 28, 24, 20, 16)
    width_method : {"cdp", "uniform"}, default "cdp"
        How the chosen candidate's widths are planned (the search itself estimates with uniform).
    num_classes : int, default 10
    seed : int, default 0
        Seed of Algorithm 1 for the chosen candidate.

    Returns
    -------
    CompoundSearch

    Raises
    ------
    ValueError
        ``budget`` is not below the unshrunk network's MACs, or no candidate can reach it (the
        message gives the smallest reachable MACs); ``contributions`` lacks a dimension or has a
        negative cost.
    """
    width_method = check_choice(width_method, "width_method", WIDTH_METHODS)
    contributions = getattr(contributions, "table", contributions)
    costs = {}
    for dimension in DIMENSIONS:
        rows = (contributions[contributions["dimension"] == dimension]
                if isinstance(contributions, pd.DataFrame) and "dimension" in contributions else [])
        if len(rows) != 1:
            raise ValueError(f"contributions must hold one row per dimension {DIMENSIONS} "
                             "(from measure_contributions)")
        costs[dimension] = check_number(rows["cost"].iloc[0], f"the {dimension} cost (accuracy lost per e-fold "
                                        "of MACs; a measured gain is a cost of 0)", minimum=0)
    base_macs = profile(_shaped_model(model, 0, 32, num_classes)).totals.macs
    budget = check_number(budget, "budget", minimum=0, include_minimum=False)
    if budget >= base_macs:
        raise ValueError(f"budget {budget:,.0f} MACs is not below the unshrunk {model}'s {base_macs:,} MACs: "
                         "nothing to shrink")
    depths = range(len(droppable_blocks(model)) + 1) if depths is None else depths
    full_res, rows, last_error = {}, [], ""
    for depth in depths:
        for resolution in sorted(resolutions, reverse=True):  # 32 first: the depth's full-resolution MACs
            shaped = _shaped_model(model, depth, resolution, num_classes)
            macs = profile(shaped).totals.macs
            if depth not in full_res:
                full_res[depth] = (macs if resolution == 32 else
                                   profile(_shaped_model(model, depth, 32, num_classes)).totals.macs)
            try:
                if macs > budget:
                    plan_uniform(shaped, "flops", budget=budget)
                feasible = True
            except ValueError as error:  # even the narrowest widths exceed the budget here
                # the pruning error's percentages refer to this shape, not to the unshrunk model: say so
                feasible, last_error = False, (f"at depth -{depth}, {resolution} px (percentages of this shape's "
                                               f"{macs:,} MACs, not of the unshrunk {model}'s {base_macs:,}): {error}")
            shares = {"depth": math.log(base_macs / full_res[depth]),
                      "resolution": math.log(full_res[depth] / macs),
                      "width": max(math.log(macs / budget), 0.0)}
            rows.append({"depth": depth, "resolution": resolution, "macs_at_full_width": macs,
                         "feasible": feasible, **{f"{d}_share": s for d, s in shares.items()},
                         "largest_share": max(shares.values()),
                         "predicted_loss": sum(costs[d] * s for d, s in shares.items()) if feasible else math.inf})
    table = pd.DataFrame(rows)
    feasible = table[table.feasible]
    if feasible.empty:
        raise ValueError(f"budget {budget:,.0f} MACs is infeasible for {model} at every searched depth and "
                         f"resolution; {last_error}")
    # Ties (zero-cost dimensions are interchangeable) go to the most even split of the saving,
    # then to the candidate that keeps most MACs before its widths are fitted.
    tied = feasible[feasible.predicted_loss <= feasible.predicted_loss.min() + TIE_TOLERANCE]
    best = tied.sort_values(["largest_share", "macs_at_full_width"], ascending=[True, False]).iloc[0]
    chosen = compound_config(model, depth=int(best.depth), resolution=int(best.resolution), budget=budget,
                             width_method=width_method, num_classes=num_classes, seed=seed)
    return CompoundSearch(chosen=chosen, candidates=table, costs=costs)
