"""Latency-aware pruning: a measured per-block latency table, and Algorithm 1 to a millisecond budget.

Fewer MACs do not always mean lower latency (notebook 06 measures the gap). NetAdapt and MetaPruning
budget with a per-layer latency lookup table measured on the device; this subpackage builds one
with LiteRT on the machine at hand and gives Algorithm 1 a fourth mode, latency-aware (LA), in which
a layer's chance of losing filters is its block's share of the table's block sum (the blocks'
measured milliseconds; the whole-model correction belongs to no block and does not enter the weights).

=================  ===============================================================================
``blocks``         a model's timed blocks (conv/dense + the layers fused to it) and their configurations
``timing``         LiteRT files timed in separate TensorFlow-free processes (``worker.py``), medians
``table``          :class:`LatencyTable`: lookup, prediction, device checks, JSON save and load
``build``          :func:`measure_latency_table`: the grid, the measurements, the fitted correction
``command``        the ``cdp-tutorial latency-table`` sub-command
=================  ===============================================================================

Examples
--------
>>> import cdp_tutorial as cdp
>>> from cdp_tutorial.latency import LatencyTable
>>> table = LatencyTable.load("data/latency/xeon-2cores-1thread.json")        # doctest: +SKIP
>>> plan = cdp.plan_pruning(cdp.models.vgg16(), "LA", target=0.5, latency_table=table, seed=0)  # doctest: +SKIP
"""

from cdp_tutorial.latency.build import CALIBRATION_PLANS, calibration_models, measure_latency_table  # noqa: F401
from cdp_tutorial.latency.table import (BlockEntry, LatencyPredictor, LatencyTable,  # noqa: F401
                                        LatencyTableWarning)
from cdp_tutorial.latency.timing import (FileTimes, MeasuredModels, Timing, export_files, measure_models,  # noqa: F401
                                         time_files)

__all__ = ["LatencyTable", "LatencyTableWarning", "LatencyPredictor", "BlockEntry", "measure_latency_table",
           "calibration_models", "CALIBRATION_PLANS", "Timing", "time_files", "export_files", "measure_models",
           "FileTimes", "MeasuredModels"]
