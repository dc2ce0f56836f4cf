r"""Weighted layer sampling: which layer loses filters next (the paper's Eqs. 4, 6 and 8).

Each prunable conv layer :math:`l` is chosen with probability equal to its share of the complexity
the mode targets,

.. math::

    w_l = \frac{X_l}{\sum_j X_j}, \qquad X \in \{P, F, M\}

(parameters for the parameter-aware mode, MACs for FLOPs-aware, bytes for memory-aware), so the
layers that cost most are pruned most often — but every layer keeps a chance, which is where the
method's randomness (and its "plasticity" argument) comes from. A layer already at its minimum
width has nothing left to give and gets probability 0.
"""

from __future__ import annotations

import numpy as np

#: Accepted spellings of the three modes, all mapping to the canonical name.
MODES = {
    "params": "params", "parameters": "params", "pa": "params", "parameter-aware": "params",
    "flops": "flops", "macs": "flops", "fa": "flops", "flops-aware": "flops",
    "memory": "memory", "mem": "memory", "ma": "memory", "memory-aware": "memory",
    "latency": "latency", "la": "latency", "latency-aware": "latency",
}

#: The paper's abbreviation for each mode; latency-aware (LA, :mod:`cdp_tutorial.latency`) is ours.
ABBREVIATIONS = {"params": "PA", "flops": "FA", "memory": "MA", "latency": "LA"}


def normalize_mode(mode) -> str:
    """Canonical mode name (``"params"``, ``"flops"``, ``"memory"`` or ``"latency"``) for any accepted spelling.

    >>> normalize_mode("FA")
    'flops'
    """
    key = str(mode).strip().lower() if isinstance(mode, str) else None
    if key not in MODES:
        raise ValueError(
            f"unknown mode {mode!r}; use 'params' (PA), 'flops' (FA), 'memory' (MA) or 'latency' "
            "(LA, with a measured latency table), in any case"
        )
    return MODES[key]


def selection_probabilities(complexities) -> np.ndarray:
    """Eqs. 4/6/8: each layer's share of the total, :math:`w_l = X_l / \\sum_j X_j`.

    Parameters
    ----------
    complexities : array-like of float
        :math:`X_l` for each candidate layer (0 for a layer that cannot be pruned further).

    Returns
    -------
    numpy.ndarray
        Probabilities summing to 1.

    Raises
    ------
    ValueError
        If a value is negative or not finite, or all are zero (no layer can be pruned).
    """
    x = np.asarray(complexities, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("complexities must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("complexities must be finite and non-negative")
    total = x.sum()
    if total <= 0:
        raise ValueError("no layer has any complexity left to prune")
    return x / total


def sample_layer(probabilities, rng: np.random.Generator) -> int:
    """Draw one layer index with the given probabilities (weighted random sampling)."""
    return int(rng.choice(len(probabilities), p=probabilities))
