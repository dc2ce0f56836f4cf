"""What Algorithm 1's latency-aware mode (LA) needs: its budget, its table, its units.

:func:`cdp_tutorial.plan_pruning` and :func:`cdp_tutorial.plan_uniform` call these so that mode LA
is checked in one place: a table is required in mode LA and refused elsewhere (it would be
ignored), ``latency_ms`` is LA's absolute budget, and totals print in milliseconds.
"""

from __future__ import annotations

from cdp_tutorial.checks import check_number

_UNITS = {"params": "parameters", "flops": "MACs", "memory": "bytes"}


def amount_text(value, mode) -> str:
    """A total in its mode's unit: ``1,234,567`` (parameters, MACs, bytes) or ``2.345 ms predicted``.

    >>> amount_text(2.3456, "latency"), amount_text(1234567, "flops")
    ('2.346 ms predicted', '1,234,567')
    """
    return f"{value:.3f} ms predicted" if mode == "latency" else f"{value:,.0f}"


def latency_budget(mode, budget, latency_ms):
    """``budget``, or in mode LA ``latency_ms`` (never both, and ``latency_ms`` in mode LA only).

    Raises
    ------
    ValueError
        ``latency_ms`` for another mode, both given, or a ``latency_ms`` that is not a positive number.
    """
    if latency_ms is None:
        return budget
    if mode != "latency":
        raise ValueError(f"latency_ms is a budget for mode 'LA' (latency-aware), not {mode!r}; use budget= "
                         "or target= for the other modes")
    if budget is not None:
        raise ValueError("give latency_ms (milliseconds) or budget, not both; in mode 'LA' they mean the same")
    return check_number(latency_ms, "latency_ms", minimum=0, include_minimum=False)


def table_for(mode, latency_table):
    """The latency table mode LA needs; refuse one given to another mode (it would be ignored).

    Raises
    ------
    ValueError
        Mode LA without a table, or a table with another mode.
    """
    if mode == "latency" and latency_table is None:
        raise ValueError("mode 'LA' (latency-aware) prices layers with a measured latency table: pass "
                         "latency_table=cdp_tutorial.latency.LatencyTable.load(path) (see data/latency/, or "
                         "measure one with `cdp-tutorial latency-table`)")
    if mode != "latency" and latency_table is not None:
        raise ValueError(f"latency_table is used by mode 'LA' only; mode {mode!r} counts {_UNITS[mode]} "
                         "and would ignore it")
    return latency_table


def latency_predictor(table, model, costs):
    """``table`` bound to ``model``'s cost model (:class:`cdp_tutorial.latency.LatencyPredictor`).

    Raises
    ------
    TypeError
        If ``table`` is not a :class:`cdp_tutorial.latency.LatencyTable`.
    ValueError
        If the table does not cover the model's layers or widths.
    """
    if not hasattr(table, "predictor"):
        raise TypeError(f"latency_table must be a cdp_tutorial.latency.LatencyTable, got {type(table).__name__}")
    return table.predictor(model, costs=costs)
