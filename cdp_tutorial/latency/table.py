r"""The latency table: measured milliseconds per block and width, and a model's predicted latency.

For a model whose blocks (:mod:`cdp_tutorial.latency.blocks`) the table covers, the prediction is

.. math::

    \hat t = s \sum_{b} T_b\bigl(C^{in}_b, \lceil C^{out}_b \rceil\bigr) \;+\; c_0 \;+\; c_1 \cdot \text{weight MB}

* :math:`T_b` is the measured latency of block *b*'s configuration. **Output widths** are rounded
  *up* to the next measured width (a multiple of the table's ``out_step``) before lookup, and never
  interpolated: the CPU kernels compute output channels in tiles, and on the Xeon of ``data/latency/``
  latency along the output width is neither a line nor a clean staircase (for the 3x3 conv at 4x4
  pixels, the steps 32k -> 32k + 16 carry all of the rise, and a width of 32k + 16 costs about what
  32k + 32 costs, or more; single points are noisy; notebook 09 shows it). Widths between the measured
  ones were not measured. So the lookup is not monotone: removing filters can raise a block's price,
  and Algorithm 1 in mode LA can take such a step.
  **Input widths** are interpolated linearly between the measured ones (piecewise, through every
  measured input width): on that Xeon the middle input width of the 3x3 conv at 4x4 pixels lies up to
  30 % off the straight line through the outer two, which is why a table measures several.
* :math:`c_0` covers what no block counts: the interpreter's own overhead per call and layers
  outside every block (a flatten, a merge).
* :math:`c_1` corrects for size, per MB (MiB, 2**20 bytes) of fp32 weights: whole models with more
  weights ran slower than their blocks' sum. It is an empirical correction; one possible cause is that a
  block timed alone keeps more of its weights in the CPU's caches between calls than it does inside
  the whole model (not measured; :math:`c_1` varied 0.05-0.14 ms/MB between sessions on that Xeon).
  :math:`s` scales what the blocks miss in proportion to their own time. All three are fitted on
  whole **calibration** models timed in the same rounds as the blocks, never on the plans the table
  is judged on.

:meth:`LatencyTable.breakdown` says, for every block, whether its figure was measured or how it
was interpolated or rounded; :meth:`LatencyTable.predict_ms` is the sum.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cdp_tutorial.files import write_json_atomically
from cdp_tutorial.latency.blocks import find_blocks

TABLE_FORMAT = "cdp-tutorial/latency-table"
#: The device record fields that must agree for a table's milliseconds to hold on this machine.
DEVICE_FIELDS = ("cpu_model", "logical_cores", "ai_edge_litert")


class LatencyTableWarning(UserWarning):
    """A latency table used on another device, or for another model, than it was measured on."""


@dataclass
class BlockEntry:
    """The measured latency of one block configuration over a grid of widths.

    ``ms[i, j]`` is the median latency at input width ``in_widths[i]`` and output width
    ``out_widths[j]``; a fixed or tied input has one row (``in_widths`` is ``[width]`` or ``[]``).
    """

    key: str
    description: str
    in_widths: list
    out_widths: list
    ms: np.ndarray
    spread: np.ndarray

    def lookup(self, in_width: float, out_width: float, layer: str = "") -> tuple[float, str]:
        """Latency (ms) at these widths, and how it was obtained (``"measured"``, or what was done)."""
        how = []
        j = int(np.searchsorted(self.out_widths, out_width - 1e-9))
        if j == len(self.out_widths):
            raise ValueError(f"layer {layer!r} ({self.description}) has {out_width:g} output channels, but "
                             f"the latency table measured at most {self.out_widths[-1]}: measure a table for "
                             "this model (measure_latency_table or cdp-tutorial latency-table)")
        if self.out_widths[j] != out_width:
            how.append(f"output {out_width:g} rounded up to {self.out_widths[j]}")
        column = self.ms[:, j]
        if len(self.in_widths) <= 1:
            return float(column[0]), "; ".join(how) or "measured"
        grid = np.asarray(self.in_widths, float)
        if in_width > grid[-1] + 1e-9:
            raise ValueError(f"layer {layer!r} ({self.description}) has {in_width:g} input channels, but the "
                             f"latency table measured at most {int(grid[-1])}: measure a table for this model")
        i = int(np.clip(np.searchsorted(grid, in_width), 1, len(grid) - 1))
        if grid[i - 1] == in_width or grid[i] == in_width:
            value = column[i - 1] if grid[i - 1] == in_width else column[i]
        else:
            share = (in_width - grid[i - 1]) / (grid[i] - grid[i - 1])
            value = column[i - 1] + share * (column[i] - column[i - 1])
            word = "interpolated" if in_width > grid[0] else "extrapolated"
            how.append(f"input {in_width:g} {word} from {int(grid[i - 1])} and {int(grid[i])}")
            value = max(value, 0.1 * column[0])  # a line through noisy points must not go below zero
        return float(value), "; ".join(how) or "measured"

    def to_dict(self) -> dict:
        return {"key": self.key, "description": self.description, "in_widths": list(self.in_widths),
                "out_widths": list(self.out_widths), "ms": np.round(self.ms, 6).tolist(),
                "spread": np.round(self.spread, 4).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "BlockEntry":
        return cls(d["key"], d["description"], [int(w) for w in d["in_widths"]],
                   [int(w) for w in d["out_widths"]], np.asarray(d["ms"], float), np.asarray(d["spread"], float))


@dataclass
class LatencyTable:
    """Per-block latency measured with LiteRT on one device, and the correction for whole models.

    Build one with :func:`cdp_tutorial.latency.measure_latency_table` (or ``cdp-tutorial
    latency-table``), save it with :meth:`save`, read it back with :meth:`load`.

    Attributes
    ----------
    model_name : str
        The model it was measured for.
    device : dict
        The machine (:func:`cdp_tutorial.devices.device_record`): CPU, cores, library versions.
    settings : dict
        How it was measured: interpreter threads, warm-up, repeats, rounds, processes, width steps.
    entries : dict
        ``{configuration key: BlockEntry}``.
    correction : dict
        ``blocks_scale`` (:math:`s`), ``intercept_ms`` (:math:`c_0`), ``ms_per_weight_mb`` (:math:`c_1`) and ``calibration``, the
        whole models they were fitted on (measured and block-sum latency, weight MB); empty for a
        partial table (a few layers), which then predicts only inside :meth:`updated` tables.
    measured_at : str
        UTC time of the measurement.
    load : list
        The machine's 1-minute load average during the measurement.
    """

    model_name: str
    device: dict
    settings: dict
    entries: dict
    correction: dict = field(default_factory=dict)
    measured_at: str = ""
    load: list = field(default_factory=list)
    layers: dict = field(default_factory=dict)  # {layer of the measured model: configuration key}

    @property
    def threads(self) -> int:
        return int(self.settings["threads"])

    # -- prediction ----------------------------------------------------------------------------
    def breakdown(self, model, *, warn: bool = True) -> pd.DataFrame:
        """Every block of ``model`` with its widths, its table latency and how it was obtained.

        Raises ``ValueError`` for a block whose configuration or widths the table does not cover.
        """
        predictor = self.predictor(model, warn=warn)
        return predictor.breakdown(predictor.costs.baseline_widths)

    def predict_ms(self, model, *, warn: bool = True) -> float:
        """Predicted batch-1 latency (ms) of ``model`` on the table's device, threads and LiteRT.

        Widths between measured ones are interpolated (inputs) or rounded up to the next measured
        output width, as :meth:`breakdown` states block by block.

        Raises
        ------
        ValueError
            A layer the table does not cover (its configuration was not measured, or it is wider than
            the table's widths), or a partial table without a fitted correction.

        Warns
        -----
        LatencyTableWarning
            If this machine or ``model`` is not the one the table was measured on.
        """
        predictor = self.predictor(model, warn=warn)
        return predictor.total_ms(predictor.costs.baseline_widths)

    def predictor(self, model, *, costs=None, warn: bool = True) -> "LatencyPredictor":
        """The table bound to ``model``'s blocks, for pricing many widths fast (Algorithm 1's mode LA)."""
        from cdp_tutorial.complexity import CostModel
        from cdp_tutorial.graph import analyse

        if costs is None:
            costs = CostModel(analyse(model))
        if warn:
            self.check_fits(model.name)
        return LatencyPredictor(self, costs)

    def check_fits(self, model_name: str) -> None:
        """Warn (:class:`LatencyTableWarning`) if this machine or the model differs from the table's."""
        from cdp_tutorial.devices import device_record

        here = device_record()
        differ = [f for f in DEVICE_FIELDS if self.device.get(f) != here.get(f)]
        if differ:
            warnings.warn(LatencyTableWarning(
                f"this latency table was measured on {_device_text(self.device)}, but this machine is "
                f"{_device_text(here)}: its milliseconds need not hold here; measure a table on this "
                "device (cdp-tutorial latency-table)"), stacklevel=4)
        if model_name != self.model_name:
            warnings.warn(LatencyTableWarning(
                f"this latency table was measured for model {self.model_name!r}, not {model_name!r}: "
                "blocks of the same configuration are priced alike, but its correction was fitted on "
                f"{self.model_name!r}"), stacklevel=4)

    def updated(self, other: "LatencyTable") -> "LatencyTable":
        """This table with ``other``'s entries taking precedence (e.g. a few layers measured live).

        The correction stays this table's. Warns if the two were measured on different devices or
        with different thread counts.
        """
        if other.device.get("cpu_model") != self.device.get("cpu_model") or other.threads != self.threads:
            warnings.warn(LatencyTableWarning(
                f"combining tables from {_device_text(self.device)}, {self.threads} thread(s) and "
                f"{_device_text(other.device)}, {other.threads} thread(s)"), stacklevel=2)
        return replace(self, entries={**self.entries, **other.entries})

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": TABLE_FORMAT, "version": 1, "model_name": self.model_name,
                "measured_at": self.measured_at, "device": self.device, "settings": self.settings,
                "load_average": [round(x, 2) for x in self.load], "correction": self.correction,
                "layers": self.layers, "blocks": [e.to_dict() for e in self.entries.values()]}

    @classmethod
    def from_dict(cls, d: dict, source: str = "the table") -> "LatencyTable":
        if not isinstance(d, dict) or d.get("format") != TABLE_FORMAT:
            raise ValueError(f"{source} is not a cdp-tutorial latency table (\"format\" must be {TABLE_FORMAT!r})")
        missing = [k for k in ("model_name", "device", "settings", "blocks") if k not in d]
        if missing:
            raise ValueError(f"{source} lacks {', '.join(missing)}")
        entries = {}
        for block in d["blocks"]:
            entry = BlockEntry.from_dict(block)
            rows = max(1, len(entry.in_widths))
            if entry.ms.shape != (rows, len(entry.out_widths)) or not np.all(np.isfinite(entry.ms)):
                raise ValueError(f"{source}: block {entry.description!r} has {entry.ms.shape} latencies for "
                                 f"{rows} input x {len(entry.out_widths)} output widths, or a non-finite one")
            entries[entry.key] = entry
        return cls(model_name=d["model_name"], device=d["device"], settings=d["settings"], entries=entries,
                   correction=d.get("correction") or {}, measured_at=d.get("measured_at", ""),
                   load=d.get("load_average", []), layers=d.get("layers", {}))

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the table as JSON, atomically; refuse to replace a file unless ``overwrite``."""
        return write_json_atomically(path, self.to_dict(), overwrite=overwrite)

    @classmethod
    def load(cls, path) -> "LatencyTable":
        """Read a table written by :meth:`save`. Raises ``FileNotFoundError`` or ``ValueError``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no latency table at {path}; measure one with "
                                    "`cdp-tutorial latency-table --model vgg16 --out <file>.json`")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON at line {error.lineno} ({error.msg})") from None
        return cls.from_dict(d, source=str(path))

    def summary(self) -> str:
        points = sum(e.ms.size for e in self.entries.values())
        fit = self.correction
        fitted = (f"correction s = {fit.get('blocks_scale', 1.0):.3f} x block sum + c0 = {fit['intercept_ms']:.3f} ms "
                  f"+ {fit['ms_per_weight_mb']:.4f} ms per weight MB (fitted on {len(fit['calibration'])} whole models)"
                  ) if fit else "no correction (partial table)"
        return (f"latency table for {self.model_name}: {len(self.entries)} block configurations, {points} "
                f"measured points; {_device_text(self.device)}, LiteRT {self.device.get('ai_edge_litert')}, "
                f"{self.threads} thread(s), measured {self.measured_at}; {fitted}")

    def __repr__(self) -> str:
        return f"LatencyTable({self.summary()})"


class LatencyPredictor:
    """A :class:`LatencyTable` bound to one model's cost model: latency of any channel widths.

    Algorithm 1's mode LA calls :meth:`layer_ms` and :meth:`total_ms` once per iteration.
    """

    def __init__(self, table: LatencyTable, costs):
        self.table, self.costs = table, costs
        self.blocks = find_blocks(costs.graph, costs)
        missing = [b for b in self.blocks if b.key not in table.entries]
        if missing:
            covered = sorted({e.description for e in table.entries.values()})
            raise ValueError(
                "the latency table does not cover layer(s) "
                + ", ".join(f"{b.layer} ({b.description})" for b in missing)
                + f"; it has {len(table.entries)} block configurations, e.g. {covered[:3]}; measure a table for this "
                "model (measure_latency_table or cdp-tutorial latency-table)")
        rows = [b.row for b in self.blocks]
        self._a_in, self._a_out = costs.a_in[rows], costs.a_out[rows]
        self._entries = [table.entries[b.key] for b in self.blocks]
        self.breakdown(costs.baseline_widths)  # every width of the unpruned model is covered, or raise now

    def block_ms(self, widths: np.ndarray) -> np.ndarray:
        """Latency (ms) of every block at channel-group widths ``widths``."""
        cin, cout = np.rint(self._a_in @ widths), np.rint(self._a_out @ widths)
        return np.array([e.lookup(i, o, b.layer)[0]
                         for e, i, o, b in zip(self._entries, cin, cout, self.blocks)])

    def layer_ms(self, widths: np.ndarray) -> np.ndarray:
        """Block latencies placed at their layers' rows of the cost model (0 elsewhere)."""
        out = np.zeros(len(self.costs.layer_names))
        out[[b.row for b in self.blocks]] = self.block_ms(widths)
        return out

    def weight_mb(self, widths: np.ndarray) -> float:
        """fp32 weight megabytes (2**20 bytes) at these widths: what the size correction scales with."""
        return float(self.costs.layer_costs(widths)[0].sum()) * 4 / 2**20

    def total_ms(self, widths: np.ndarray) -> float:
        """Predicted whole-model latency: scale x block sum + intercept + size correction."""
        fit = self.table.correction
        if not fit:
            raise ValueError("this latency table has no whole-model correction (it covers only some "
                             "layers); use table.updated(...) on a complete table, or measure_latency_table "
                             "without layers=")
        return float(fit.get("blocks_scale", 1.0) * self.block_ms(widths).sum() + fit["intercept_ms"]
                     + fit["ms_per_weight_mb"] * self.weight_mb(widths))

    def plan_record(self, baseline_widths: np.ndarray, widths: np.ndarray) -> dict:
        """What a latency-aware plan keeps: predicted latency before and after, and which table."""
        t = self.table
        return {"baseline_ms": round(self.total_ms(baseline_widths), 6), "final_ms": round(self.total_ms(widths), 6),
                "table": f"{t.model_name}, {_device_text(t.device)}, {t.threads} thread(s), measured {t.measured_at}"}

    def breakdown(self, widths: np.ndarray) -> pd.DataFrame:
        cin, cout = np.rint(self._a_in @ widths), np.rint(self._a_out @ widths)
        rows = []
        for e, i, o, b in zip(self._entries, cin, cout, self.blocks):
            ms, how = e.lookup(i, o, b.layer)
            rows.append(dict(layer=b.layer, block=e.description, in_channels=int(i), out_channels=int(o),
                             ms=ms, how=how))
        return pd.DataFrame(rows)


def _device_text(record: dict) -> str:
    return (f"{record.get('cpu_model', 'an unknown CPU')} ({record.get('logical_cores', '?')} logical cores, "
            f"LiteRT {record.get('ai_edge_litert', '?')})")


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
