"""Run profiles: how much data, how many epochs and which recipe a notebook or a sweep uses.

Three profiles, from a few minutes on a laptop CPU to the paper's full protocol:

==========  ===============================  ======================================================
profile     data                             training
==========  ===============================  ======================================================
quick       the committed fixture             3 epochs, modern recipe, one seed: CI, Binder, a first read
            (Fashion-MNIST subset, 32x32x3)
standard    CIFAR-10, full                   30 epochs, modern recipe, one seed: a GPU, tens of minutes
paper       CIFAR-10, full                   150 epochs, RMSprop 1e-3, batch 128, 5 seeds (the paper)
==========  ===============================  ======================================================

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
        ``"quick"``, ``"standard"`` or ``"paper"``.
    dataset : str
        Name understood by :func:`cdp_tutorial.data.load_dataset`.
    train_size, test_size : int or None
        Subset sizes (``None``: the whole split).
    epochs, batch_size : int
        Training length and batch size.
    recipe : str
        Training recipe name (see :mod:`cdp_tutorial.training`).
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
        label="quick profile: Fashion-MNIST fixture, 3 epochs, modern recipe, 1 seed (not the paper's protocol)",
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
