"""Run profiles: how much data, how many epochs and which recipe a notebook or a sweep uses.

Four profiles, from a few minutes on a slow laptop CPU to the paper's full protocol:

==========  ===============================  ======================================================
profile     data                             training
==========  ===============================  ======================================================
quick       the committed fixture             models trained at x0.25 width, 3 epochs, modern recipe,
            (Fashion-MNIST, 2,000 / 500        one seed: CI, Binder, a first read
            images, 32x32x3)
evidence    Fashion-MNIST, 20,000 / 10,000   models trained at x0.25 width, 10 epochs, modern recipe,
                                             3 seeds: the committed evidence sweep, hours on 2 CPU cores
standard    CIFAR-10, full                   full width, 30 epochs, modern recipe, one seed: a GPU
paper       CIFAR-10, full                   full width, 150 epochs, RMSprop 1e-3, batch 128, 5 seeds
==========  ===============================  ======================================================

Why the quick profile trains narrow models
------------------------------------------
The quick profile must fit the slowest machine this project is tested on: 2 CPU cores where the
full-width CIFAR VGG-16 trains at about 16 images/s (``benchmarks/machine_speed.py`` measures yours).
There, one 3-epoch run on the 2,000-image fixture takes about 6 minutes, a notebook trains six to
ten models, and CI must run all nine notebooks and the tests in 20 minutes. Three levers were weighed:

* **Fewer images or epochs** would cut time linearly, but 2,000 images and 3 epochs are already the
  least that learns reliably (measured: 70-75 % on the fixture, against 10 % for chance); halving
  either gives scattered accuracies that teach nothing.
* **A smaller model family** would change the lesson: the complexity shares of VGG-16's layers,
  which decide where Algorithm 1 prunes, are the paper's point.
* **Narrower training models** (``width_multiplier``) keep the architecture and its layer shares.
  Complexity is still profiled and *planned* on the full-size model, so every pruning ratio, mode
  and comparison with uniform scaling is the paper's; only the model that is *trained* has every
  width scaled by ``width_multiplier`` (the plan's per-layer widths too, so a pruned layer stays as
  much narrower than its baseline as the plan says). Width x0.25 trains about 20x faster than full
  width on a slow 2-core machine (``benchmarks/machine_speed.py``, 2026-11-23: 17.0 -> 338 images/s,
  VGG-16, batch 64), because MACs fall about 16x and small convs waste less of the CPU's memory
  bandwidth. At that speed a run's fixed cost (building the model, tracing the training step) is a
  large part of it, so the number of runs, more than their size, sets a notebook's time.

So the quick profile keeps the data and epochs that learn, trains models at x0.25 width, and says so
in every label. What it cannot show is the paper's accuracies: those need full width, CIFAR and
150 epochs (the ``paper`` profile, on a GPU).

A profile is chosen by name, or by the ``CDP_PROFILE`` environment variable when no name is given
(CI sets ``CDP_PROFILE=quick``); without either it is ``quick``, so nothing downloads by surprise.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

ENV_VAR = "CDP_PROFILE"
DEFAULT = "quick"


@dataclass(frozen=True)
class Profile:
    """One named run configuration.

    Attributes
    ----------
    name : str
        ``"quick"``, ``"evidence"``, ``"standard"`` or ``"paper"``.
    dataset : str
        Name understood by :func:`cdp_tutorial.data.load_dataset`.
    train_size, test_size : int or None
        Subset sizes (``None``: the whole split).
    epochs, batch_size : int
        Training length and batch size.
    recipe : str
        Training recipe name (see :mod:`cdp_tutorial.training`).
    width_multiplier : float
        Every width of the *trained* model is this fraction of the planned one (1.0: train what was
        planned). Complexities and plans always refer to the full-size model.
    seeds : tuple of int
        Seeds a sweep repeats each run with.
    label : str
        How results from this profile are labelled wherever they are shown.
    """

    name: str
    dataset: str
    train_size: int | None
    test_size: int | None
    epochs: int
    batch_size: int
    recipe: str
    seeds: tuple[int, ...]
    label: str
    width_multiplier: float = 1.0

    @property
    def is_paper_protocol(self) -> bool:
        """True only for the paper's own protocol; every other result must say it is not."""
        return self.name == "paper"

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        dataset="fixture",
        train_size=None,
        test_size=None,
        epochs=3,
        batch_size=64,
        # the modern recipe's cosine schedule ends each short run at a settled accuracy; with the
        # paper's constant RMSprop rate, 3 epochs end wherever the last noisy step left them
        recipe="modern",
        seeds=(0,),
        label=("quick profile: Fashion-MNIST fixture, models trained at x0.25 width, 3 epochs, "
               "modern recipe, 1 seed (not the paper's protocol)"),
        width_multiplier=0.25,
    ),
    # The evidence sweep (data/results/evidence/): enough real data, epochs and seeds for paired
    # comparisons between methods, and still CPU-sized (about 320 images/s at x0.25 on the slowest
    # 2-core machine). Never run in CI; see data/results/evidence/README.md.
    "evidence": Profile(
        name="evidence",
        dataset="fashion_mnist",
        train_size=20000,
        test_size=None,
        epochs=10,
        batch_size=128,
        recipe="modern",
        seeds=(0, 1, 2),
        label=("evidence profile: Fashion-MNIST (20,000 / 10,000 images), models trained at x0.25 width, "
               "10 epochs, modern recipe, 3 seeds (not the paper's protocol)"),
        width_multiplier=0.25,
    ),
    "standard": Profile(
        name="standard",
        dataset="cifar10",
        train_size=None,
        test_size=None,
        epochs=30,
        batch_size=128,
        recipe="modern",
        seeds=(0,),
        label="standard profile: CIFAR-10, 30 epochs, modern recipe, 1 seed (not the paper's protocol)",
    ),
    "paper": Profile(
        name="paper",
        dataset="cifar10",
        train_size=None,
        test_size=None,
        epochs=150,
        batch_size=128,
        recipe="paper",
        seeds=(0, 1, 2, 3, 4),
        label="paper profile: CIFAR-10, 150 epochs, RMSprop 1e-3, batch 128, 5 seeds",
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, or the one ``CDP_PROFILE`` names, or ``quick``.

    Raises
    ------
    ValueError
        If the name (given or from the environment) is not a known profile.
    """
    source = "argument"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or DEFAULT, f"${ENV_VAR}"
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r} (from {source}); choose one of {sorted(PROFILES)}"
        )
    return PROFILES[key]
