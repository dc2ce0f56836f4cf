"""Why a budget is out of reach: what holds channels at full width, and what would lower the floor.

Algorithm 1 can only shrink the channel groups a model leaves free. When a target lies below what
the model reaches with every free group at its minimum width, :func:`explain_floor` says which
groups stayed whole and why, by cause, each with what would help:

* residual merges (``coupled="skip"``, the paper's choice): the floor ``coupled="tie"`` reaches,
  suggested only when it is lower;
* ``ignored_layers``: the floor without them;
* operations whose channel mapping is unknown, grouped convs that read a concatenation, attention
  layers, layers that need every channel: the floor *if* those groups could shrink, a bound for
  what changing the model (a standard layer in place of a custom one) could give;
* ``round_to`` and ``min_keep``, which keep more filters in every layer: the floor without them;
* the model's output and dense heads, which are never pruned (not mentioned).

Every floor is written by :func:`floor_text`: a target the caller can pass back as it reads
(:func:`target_text`), and what it is, a share of the baseline in percent.
"""

from __future__ import annotations

import numpy as np

#: Causes in the order they are reported (kinds of frozen groups, plus two choices of the caller).
CAUSES = ("residual", "ignored", "unknown op", "grouped conv", "attention", "needs all channels",
          "mixed merge")

#: What would let a frozen kind of group shrink.
REMEDIES = {
    "unknown op": "standard Keras layers in their place would let them shrink",
    "grouped conv": "a grouped conv prunes whole groups only when it reads one conv's output",
}


def target_text(fraction: float) -> str:
    """A lowest reachable target as text: rounded *up*, so that passing it back as ``target`` works.

    Four decimals as a rule; below 0.001, three significant digits instead, so that a floor such as
    ResNet-50's with ``coupled="tie"`` (about 2e-5 of its parameters) does not read as zero.

    Parameters
    ----------
    fraction : float
        A complexity as a fraction of the baseline's, in [0, 1].

    Returns
    -------
    str
        The fraction in plain decimal notation, never below ``fraction``.

    Examples
    --------
    >>> target_text(0.139744)  # 0.1397 would be below the floor
    '0.1398'
    >>> target_text(1.8622e-05)
    '0.0000187'
    >>> target_text(0.0)
    '0'
    """
    if fraction <= 0:
        return "0"
    decimals = 4 if fraction >= 1e-3 else 2 - int(np.floor(np.log10(fraction)))
    scaled = fraction * 10**decimals
    # round up, but not past a value that floating point put a hair above a round number
    value = np.ceil(scaled * (1 - 1e-12)) / 10**decimals
    return f"{value:.{decimals}f}"


def floor_text(fraction: float) -> str:
    """A lowest reachable target and what it means: the target, then its share of the baseline in %.

    Parameters
    ----------
    fraction : float
        A complexity as a fraction of the baseline's, in [0, 1].

    Returns
    -------
    str
        ``target_text(fraction)`` followed by the percentage, two significant digits below 0.1 %,
        so that a tiny floor does not read as a bare number.

    Examples
    --------
    >>> floor_text(1.8622e-05)
    '0.0000187 (0.0019% of baseline)'
    >>> floor_text(0.139744)
    '0.1398 (13.97% of baseline)'
    """
    if fraction >= 1e-3:
        percent = f"{fraction:.2%}"
    else:
        percent = np.format_float_positional(100 * fraction, precision=2, fractional=False, trim="-") + "%"
    return f"{target_text(fraction)} ({percent} of baseline)"


def held_groups(problem) -> dict[str, list]:
    """``{cause: [groups]}``: the channel groups with a producer that the problem leaves whole."""
    in_units = {problem.costs.group_ids[c] for c in problem.unit_columns}
    ignored = set(getattr(problem, "ignored", ()) or ())
    held: dict[str, list] = {}
    for group in problem.graph.groups.values():
        if not group.producers or group.id in in_units:
            continue
        if group.frozen_by:
            for kind in dict.fromkeys(group.frozen_kinds):
                held.setdefault(kind, []).append(group)
        elif group.coupled and problem.coupled == "skip":
            held.setdefault("residual", []).append(group)
        elif ignored & set(group.producers):
            held.setdefault("ignored", []).append(group)
    return held


def floor_if_free(problem, mode, groups) -> float:
    """The lowest total with ``groups`` also at one block of channels (a bound: other limits aside)."""
    widths = problem.minimum_widths()
    column = {g: j for j, g in enumerate(problem.costs.group_ids)}
    for group in groups:
        widths[column[group.id]] = min(group.width, group.block)
    return problem.total(widths, mode)


def explain_floor(problem, mode) -> str:
    """Sentences that say what holds the model above its lowest reachable target and what would help.

    Parameters
    ----------
    problem : cdp_tutorial.pruning.PruningProblem
        The problem that could not reach its budget. Its ``options`` (the arguments it was made
        with) let this function ask what ``coupled="tie"`` or no ``ignored_layers`` would reach.
    mode : str
        ``"params"``, ``"flops"``, ``"memory"`` or ``"latency"``.

    Returns
    -------
    str
        Starting with ". Held at full width: …", or ``""`` if nothing but the model's output and
        dense heads holds it.
    """
    baseline = problem.total(problem.baseline_widths, mode)
    lowest = problem.total(problem.minimum_widths(), mode) / baseline
    held = held_groups(problem)
    parts, advice = [], []
    for cause in CAUSES:
        groups = held.get(cause)
        if not groups:
            continue
        count = f"{len(groups)} channel group{'s' if len(groups) > 1 else ''}"
        if cause == "residual":
            merges = sorted({m for g in groups for m in g.merged_by})
            text = f"{count} tied by residual merges ({_some(merges)}), which coupled='skip' leaves whole"
            tied = _lowest_with(problem, mode, coupled="tie")
            if tied is not None and tied < lowest - 5e-5:
                text += (": with coupled='tie' they shrink as units, lowering the lowest reachable target to "
                         f"{floor_text(tied)}")
                advice.append("Try coupled='tie' to prune residual channels too")
            elif tied is not None:
                text += " (coupled='tie' would not lower the floor)"
        elif cause == "ignored":
            text = f"{count} kept whole by ignored_layers"
            free = _lowest_with(problem, mode, ignored_layers=())
            if free is not None and free < lowest - 5e-5:
                text += f" (without them: {floor_text(free)})"
        else:
            reasons = sorted({reason for g in groups
                              for reason, kind in zip(g.frozen_by, g.frozen_kinds) if kind == cause})
            text = f"{count} frozen, {_some(reasons, 1)}"
            bound = floor_if_free(problem, mode, groups) / baseline
            if bound < lowest - 5e-5:
                remedy = f"; {REMEDIES[cause]}" if cause in REMEDIES else ""
                text += f" (free, the floor could be as low as {floor_text(bound)}{remedy})"
        parts.append(text)
    options = getattr(problem, "options", {}) or {}
    if options.get("round_to", 1) != 1 or options.get("min_keep") is not None:
        floors = _lowest_with(problem, mode, round_to=1, min_keep=None)
        if floors is not None and floors < lowest - 5e-5:
            parts.append(f"round_to/min_keep keep more filters in every layer (without them: {floor_text(floors)})")
    if not parts:
        return ""
    return ". Held at full width: " + "; ".join(parts) + "".join(f". {a}" for a in advice)


def _some(names, shown: int = 2) -> str:
    """The first ``shown`` names, and how many more."""
    quoted = [n if " " in n else repr(n) for n in names]
    more = len(quoted) - shown
    return ", ".join(quoted[:shown]) + (f" and {more} more" if more > 0 else "")


def _lowest_with(problem, mode, **changes) -> float | None:
    """The lowest reachable target of the same problem with some of its options changed."""
    options = getattr(problem, "options", None)
    if options is None:
        return None
    try:
        other = type(problem)(problem.graph.model, **{**options, **changes})
    except ValueError:  # e.g. still nothing prunable
        return None
    base = other.total(other.baseline_widths, mode)
    return float(np.float64(other.total(other.minimum_widths(), mode)) / base)
