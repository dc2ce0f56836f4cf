"""Training recipes: which optimizer, learning rate, schedule, regularisation and augmentation.

Two recipes (:data:`RECIPES`):

* ``"paper"`` -- the paper's protocol: RMSprop, learning rate 1e-3, batch 128, no augmentation, no
  weight decay (Keras 2.2.4, 150 epochs).
* ``"modern"`` -- what public CIFAR baselines use today: SGD with Nesterov momentum, a cosine schedule,
  weight decay and random crop + flip augmentation.

A :class:`Recipe` only describes; :func:`cdp_tutorial.training.train` compiles a model with it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import keras

from cdp_tutorial.checks import check_choice, check_int, check_number

__all__ = ["RECIPES", "Recipe", "WarmupCosine", "get_recipe"]


@keras.saving.register_keras_serializable(package="cdp_tutorial")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    r"""Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to 0 over ``decay_steps``.

    .. math::

        \eta(s) = \begin{cases} \eta_{\max}\, s / W & s < W \\
        \tfrac12 \eta_{\max} \bigl(1 + \cos(\pi \min(1, (s - W) / D))\bigr) & s \ge W \end{cases}

    The same values as ``keras.optimizers.schedules.CosineDecay(0.0, D, warmup_target=peak,
    warmup_steps=W)``, written without a ``cond``: Keras evaluates the schedule once per weight when
    it applies weight decay, and a ``cond`` per weight made tracing VGG-16's training step take
    seconds longer on a slow CPU (tracing is most of a short quick-profile run's fixed cost).

    Examples
    --------
    >>> lr = WarmupCosine(peak=0.1, warmup_steps=10, decay_steps=90)
    >>> [round(float(lr(s)), 4) for s in (0, 5, 10, 55, 100, 120)]
    [0.0, 0.05, 0.1, 0.05, 0.0, 0.0]
    """

    def __init__(self, peak: float, warmup_steps: int, decay_steps: int):
        self.peak = check_number(peak, "peak", minimum=0)
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0)
        self.decay_steps = check_int(decay_steps, "decay_steps", minimum=1)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warming = self.peak * step / max(self.warmup_steps, 1)
        done = ops.clip((step - self.warmup_steps) / self.decay_steps, 0.0, 1.0)
        decaying = 0.5 * self.peak * (1.0 + ops.cos(math.pi * done))
        return ops.where(step < self.warmup_steps, warming, decaying)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "decay_steps": self.decay_steps}


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning-rate schedule, regularisation, augmentation, batch size.

    Attributes
    ----------
    name : str
        Key in :data:`RECIPES`.
    optimizer : {"rmsprop", "sgd"}
        Optimizer family.
    learning_rate : float
        Learning rate (the peak one, for a schedule) at ``batch_size``.
    batch_size : int
        Default batch size.
    momentum : float
        SGD momentum (ignored by RMSprop, whose ``rho`` stays at Keras' 0.9).
    nesterov : bool
        Nesterov momentum (SGD only).
    schedule : {"constant", "cosine"}
        ``"cosine"``: linear warm-up, then cosine decay to zero at the last step.
    warmup_epochs : float
        Length of the warm-up, capped at a tenth of the whole run so short runs still decay.
    weight_decay : float
        L2 coefficient *as PyTorch recipes state it* (added to the gradient, then through momentum).
        Keras' ``weight_decay`` is decoupled (``w -= lr * wd * w`` each step), so the optimizer gets
        ``weight_decay / (1 - momentum)``: the same shrinkage per step once momentum is in steady state.
    augment : bool
        Random crop (pad 4) and horizontal flip of the training images.
    scale_lr_with_batch : bool
        Linear scaling rule (Goyal et al. 2017): the learning rate is ``learning_rate * b / batch_size``
        for a batch size ``b`` other than the default.
    summary : str
        One line for notebooks and result tables.

    Raises
    ------
    TypeError
        ``batch_size`` is not an integer.
    ValueError
        Unknown ``optimizer`` or ``schedule``; a learning rate that is not > 0, a momentum outside
        [0, 1), or a negative warm-up or weight decay.
    """

    name: str
    optimizer: str
    learning_rate: float
    batch_size: int
    momentum: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    augment: bool = False
    scale_lr_with_batch: bool = False
    summary: str = ""

    def __post_init__(self):
        check_choice(self.optimizer, "optimizer", ("rmsprop", "sgd"))
        check_choice(self.schedule, "schedule", ("constant", "cosine"))
        # Stored as plain Python numbers (numpy ones accepted), so to_dict() is JSON-ready.
        checked = {
            "batch_size": check_int(self.batch_size, "batch_size", minimum=1),
            "learning_rate": check_number(self.learning_rate, "learning_rate",
                                          minimum=0, include_minimum=False),
            "momentum": check_number(self.momentum, "momentum",
                                     minimum=0, maximum=1, include_maximum=False),
            "warmup_epochs": check_number(self.warmup_epochs, "warmup_epochs", minimum=0),
            "weight_decay": check_number(self.weight_decay, "weight_decay", minimum=0),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # a frozen dataclass: set once, here

    def learning_rate_for(self, batch_size: int) -> float:
        """Peak learning rate for ``batch_size`` (linearly scaled if ``scale_lr_with_batch``).

        Examples
        --------
        >>> RECIPES["modern"].learning_rate_for(256)
        0.2
        >>> RECIPES["paper"].learning_rate_for(5)  # the paper keeps 1e-3 at any batch size
        0.001
        """
        if self.scale_lr_with_batch:
            return self.learning_rate * batch_size / self.batch_size
        return self.learning_rate

    def make_optimizer(self, *, batch_size: int, steps_per_epoch: int, epochs: int):
        """Build a fresh Keras optimizer for a run of ``epochs`` x ``steps_per_epoch`` steps.

        Examples
        --------
        >>> opt = RECIPES["paper"].make_optimizer(batch_size=128, steps_per_epoch=391, epochs=150)
        >>> type(opt).__name__, round(float(opt.learning_rate), 6)
        ('RMSprop', 0.001)
        >>> opt = RECIPES["modern"].make_optimizer(batch_size=256, steps_per_epoch=196, epochs=30)
        >>> type(opt).__name__, opt.nesterov, round(opt.weight_decay, 6)  # 5e-4 / (1 - 0.9)
        ('SGD', True, 0.005)
        """
        peak = self.learning_rate_for(batch_size)
        total_steps = max(1, steps_per_epoch * epochs)
        if self.schedule == "cosine":
            warmup = min(round(self.warmup_epochs * steps_per_epoch), total_steps // 10)
            lr = WarmupCosine(peak, warmup_steps=warmup, decay_steps=total_steps - warmup)
        else:
            lr = peak
        # Keras' decoupled decay, matched to the coupled L2 the reference recipes state (see above).
        decay = self.weight_decay / (1.0 - self.momentum) if self.weight_decay else None
        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate=lr, weight_decay=decay)
        return keras.optimizers.SGD(learning_rate=lr, momentum=self.momentum, nesterov=self.nesterov,
                                    weight_decay=decay)

    def for_finetuning(self, lr_scale: float = 0.1) -> Recipe:
        """The recipe a pruned, already trained model is fine-tuned with: ``lr_scale`` x the learning rate.

        Criteria-based pruning fine-tunes trained weights, which a full initial learning rate would
        throw away (a fine-tune that collapses to chance is the symptom). What the references do:
        Li et al. (2017, "Pruning Filters for Efficient ConvNets", §4) retrain pruned CIFAR-10 networks
        at a constant 0.001 after training at 0.1 (a hundredth); Jordao et al.'s PLS code
        (``arturjordao/PruningNeuralNetworks``, ``main.py``) trains and fine-tunes alike with RMSprop at
        1e-4 (a tenth of the CDP paper's 1e-3, the rate it trains everything with), rebuilding the dense
        head and training it alone for 5 epochs before 45 epochs of the whole network. This package's
        choice, between the two: the same optimizer, augmentation and schedule shape as training,
        ``lr_scale`` (default a tenth) x its learning rate, no warm-up (the weights are trained
        already), and a fresh optimizer (its moments belonged to removed filters), as both references
        start one. It keeps the trained head rather than rebuilding it.

        Examples
        --------
        >>> tuned = RECIPES["paper"].for_finetuning(0.1)
        >>> tuned.name, tuned.optimizer, round(tuned.learning_rate, 6), tuned.warmup_epochs
        ('paper-finetune', 'rmsprop', 0.0001, 0.0)
        """
        lr_scale = check_number(lr_scale, "lr_scale", minimum=0, include_minimum=False, maximum=1)
        return dataclasses.replace(
            self, name=f"{self.name}-finetune", learning_rate=round(self.learning_rate * lr_scale, 12),
            warmup_epochs=0.0,
            summary=f"{self.name} recipe at {lr_scale:g} x its learning rate, no warm-up (fine-tuning)")

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    # The paper (Zawish et al. 2022): Keras 2.2.4, 150 epochs, batch 128, RMSprop with learning rate
    # 1e-3; nothing is said about augmentation, weight decay or a schedule, so there is none. Keras 3's
    # RMSprop keeps Keras 2's rho=0.9 and epsilon=1e-7, but adds epsilon inside the square root
    # (lr*g/sqrt(v+eps)) where Keras 2.2.4 added it outside (lr*g/(sqrt(v)+eps)): a negligible change.
    "paper": Recipe(
        name="paper", optimizer="rmsprop", learning_rate=1e-3, batch_size=128,
        summary="paper: RMSprop lr 1e-3, batch 128, no augmentation, no weight decay",
    ),
    # Public CIFAR baselines. kuangliu/pytorch-cifar's README reports VGG16 92.64 % on CIFAR-10 with
    # SGD (momentum 0.9, weight decay 5e-4) and random crop (pad 4) + flip; lmbxmu/HRankPlus's README
    # reports a VGG-16-BN baseline of 93.96 % (14.98 M params, 313.73 M FLOPs); da2so/DA2Lite's model
    # zoo reports VGG16 93.17 %. We add Nesterov momentum, cosine decay with a 2-epoch warm-up (no
    # hand-tuned step schedule) and scale the learning rate linearly with the batch size. No label
    # smoothing: those baselines do not use it, and Keras' sparse cross-entropy does not offer it.
    "modern": Recipe(
        name="modern", optimizer="sgd", learning_rate=0.1, batch_size=128, momentum=0.9,
        nesterov=True, schedule="cosine", warmup_epochs=2.0, weight_decay=5e-4, augment=True,
        scale_lr_with_batch=True,
        summary="modern: SGD nesterov 0.9, lr 0.1 x batch/128, cosine, 2-epoch warm-up, "
                "weight decay 5e-4, crop + flip",
    ),
}


def get_recipe(name) -> Recipe:
    """Return the recipe called ``name`` (a :class:`Recipe` is passed through).

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_recipe("paper").optimizer
    'rmsprop'
    >>> get_recipe("Modern").weight_decay
    0.0005
    """
    if isinstance(name, Recipe):
        return name
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[key]

