"""The pruning plan: what Algorithm 1 returns, and how it is saved, loaded and checked.

A :class:`PruningPlan` records how many filters each prunable conv keeps (not which: the paper
trains the pruned architecture from scratch), the complexities before and after, and the history
of the loop, so a run can be inspected, saved as JSON and repeated.

A plan file is a promise that its totals describe its widths. Loading checks every field (integer
widths between 1 and the baseline's, every prunable layer present, a known mode) and names the file
in every error. Its totals are checked too: a file whose widths (or totals) were edited by hand no
longer matches the fingerprint written with it, and is recounted on the model it was made for
(:meth:`PruningPlan.load` with ``model=``, or :meth:`PruningPlan.recompute`); without that model it
is refused rather than summarised with stale totals. The same holds for a plan edited in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cdp_tutorial.checks import check_choice, check_fraction, check_int, check_number, check_seed
from cdp_tutorial.complexity import MEMORY_CHOICES, CostModel, Totals
from cdp_tutorial.files import write_json_atomically
from cdp_tutorial.graph import analyse
from cdp_tutorial.sampling import ABBREVIATIONS, normalize_mode

PLAN_FORMAT = "cdp-tutorial/pruning-plan"
#: Keys every plan file has (older files may lack ``method``, ``tied``, ``memory``, ``removed_fraction``).
REQUIRED_KEYS = ("format", "model_name", "mode", "target", "budget", "step", "seed", "coupled", "round_to",
                 "bytes_per_element", "widths", "baseline_widths", "baseline", "final", "history")


@dataclass
class PruningPlan:
    """The output of Algorithm 1: how many filters each prunable conv layer keeps.

    Attributes
    ----------
    widths : dict
        ``{layer name: filters}`` for every prunable conv layer after pruning.
    baseline_widths : dict
        The same layers' filter counts before pruning.
    history : pandas.DataFrame
        One row per iteration: ``iteration, layer, probability, filters_before, filters_after,
        params, macs, memory_bytes, fraction`` (model totals after the step; ``fraction`` is the
        mode's total relative to the baseline).
    baseline, final : Totals
        Model complexity before and after.
    mode : str
        ``"params"``, ``"flops"`` or ``"memory"``.
    target : float or None
        The budget as a fraction of the baseline (None if an absolute budget was given).
    budget : float
        The absolute budget in the mode's unit (parameters, MACs or bytes).
    """

    model_name: str
    mode: str
    target: float | None
    budget: float
    step: float | None
    seed: int | None
    coupled: str
    round_to: int
    bytes_per_element: int
    widths: dict
    baseline_widths: dict
    baseline: Totals
    final: Totals
    history: pd.DataFrame = field(repr=False)
    method: str = "cdp"  # "cdp" (Algorithm 1), "uniform" (every layer alike) or a ranking criterion
    tied: list = field(default_factory=list, repr=False)  # groups of layers that share a width
    memory: str = "stored"  # what memory counts: "stored" (all weights) or "eq5" (kernels only)
    removed_fraction: float | None = None  # a ranking plan's share of filters removed (``step`` is Algorithm 1's p)
    latency: dict | None = None  # mode LA: predicted baseline_ms, final_ms and the table (cdp_tutorial.latency)
    # The fingerprint of the widths and totals as made: an edit of either afterwards shows as a mismatch.
    counted: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.counted = self.fingerprint()

    def fingerprint(self) -> str:
        """A short hash of the widths and the totals counted for them (saved as ``totals_fingerprint``)."""
        text = json.dumps({"widths": self.widths, "baseline_widths": self.baseline_widths,
                           "baseline": self.baseline.as_dict(), "final": self.final.as_dict()},
                          sort_keys=True, default=_plain)  # numpy ints hash as the ints JSON keeps
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def check_totals_current(self) -> None:
        """Raise ``ValueError`` if the widths or totals were edited after they were counted."""
        if self.fingerprint() != self.counted:
            raise ValueError(
                f"the {self.model_name} plan's widths (or totals) were edited after its totals were "
                "counted, so they no longer describe each other; call plan.recompute(model) with the "
                "model it was planned on to count them again")

    @property
    def reduction(self) -> dict:
        """Fraction of each complexity removed: ``{"params": .., "flops": .., "memory": ..}``."""
        self.check_totals_current()
        return {m: 1.0 - self.final.mode_total(m) / self.baseline.mode_total(m) for m in ("params", "flops", "memory")}

    def summary(self) -> str:
        """One line: the mode's total against the budget, what was removed, and how."""
        label = ABBREVIATIONS.get(self.mode, self.mode) if self.method == "cdp" else self.method  # uniform, l1, ...
        red = self.reduction
        unit = {"params": "parameters", "flops": "MACs", "memory": "bytes"}.get(self.mode, self.mode)
        ms = self.mode == "latency"  # LA's total is predicted milliseconds, kept in self.latency
        total = self.latency["final_ms"] if ms else self.final.mode_total(self.mode)
        within = "<=" if total <= self.budget else "> (over)"
        return (f"{self.model_name} {label} ({self.mode}) plan: "
                + (f"{total:.3f} ms predicted {within} budget {self.budget:.3f} ms" if ms else
                   f"{total:,} {unit} {within} budget {self.budget:,.0f}")
                + f"; removed params {red['params']:.1%}, "
                f"MACs {red['flops']:.1%}, memory {red['memory']:.1%} "
                + (f"by removing {self.removed_fraction:.1%} of the filters" if self.removed_fraction is not None
                   else f"in {len(self.history)} iterations"))

    def recompute(self, model) -> "PruningPlan":
        """This plan with its baseline and final totals counted again on ``model``.

        Parameters
        ----------
        model : keras.Model
            The (unpruned) model the plan was made for.

        Returns
        -------
        PruningPlan
            A copy whose totals describe its widths (the history is kept as Algorithm 1 recorded it).

        Raises
        ------
        ValueError
            A layer of the plan is not a conv of ``model``, has another baseline width there, or
            layers that must share one width (tied by an ``Add``) are given different widths.
        """
        graph = analyse(model)
        costs = CostModel(graph, self.bytes_per_element, self.memory)
        column = {g: j for j, g in enumerate(costs.group_ids)}
        widths, chosen = costs.baseline_widths.copy(), {}
        for name, width in self.widths.items():
            info = graph.layers.get(name)
            if info is None or info.role != "producer":
                raise ValueError(f"the plan names layer {name!r}, which is not a conv layer of model "
                                 f"{model.name!r}: was the plan made for another model? "
                                 f"(plan for {self.model_name!r})")
            group = graph.group_of(name)
            if group.width != self.baseline_widths[name]:
                raise ValueError(f"layer {name!r} has {group.width} filters but the plan was made for "
                                 f"{self.baseline_widths[name]}: recount a plan on the model it was planned on")
            if chosen.setdefault(group.id, (name, width))[1] != width:
                raise ValueError(f"layers {chosen[group.id][0]!r} and {name!r} share their channels (an Add "
                                 f"ties them) and must keep one width; the plan gives {chosen[group.id][1]} "
                                 f"and {width}")
            widths[column[group.id]] = width
        return dataclasses.replace(self, baseline=costs.totals(), final=costs.totals(widths))

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": PLAN_FORMAT, "version": 1,
            "model_name": self.model_name, "method": self.method, "mode": self.mode,
            "target": self.target, "budget": self.budget, "step": self.step, "seed": self.seed,
            "coupled": self.coupled, "round_to": self.round_to,
            "bytes_per_element": self.bytes_per_element, "memory": self.memory,
            "removed_fraction": self.removed_fraction, "latency": self.latency,
            "widths": self.widths, "baseline_widths": self.baseline_widths, "tied": self.tied,
            "baseline": self.baseline.as_dict(), "final": self.final.as_dict(),
            "totals_fingerprint": self.counted,
            "history": self.history.to_dict(orient="records"),
        }

    @classmethod
    def from_dict(cls, d: dict, *, model=None, source: str = "the plan") -> "PruningPlan":
        """A plan from :meth:`to_dict`'s output, every field checked.

        Parameters
        ----------
        d : dict
            The plan's fields.
        model : keras.Model, optional
            The model the plan was made for: its totals are counted again on it
            (:meth:`recompute`), which also checks the plan fits it.
        source : str, default "the plan"
            How errors name where ``d`` came from (:meth:`load` passes the file).

        Raises
        ------
        ValueError
            A missing key, a field of the wrong type or out of range, a width that is not an
            integer in ``[1, baseline width]``, a prunable layer without a width, an unknown mode,
            or totals that no longer match the widths (edited) while no ``model`` is given.
        """
        try:
            plan = cls(**_checked_fields(d))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from None
        if model is not None:
            return plan.recompute(model)
        stored = d.get("totals_fingerprint")
        if stored is not None and stored != plan.counted:
            raise ValueError(
                f"{source}: the widths (or totals) were edited after the plan was made, so its totals "
                "no longer describe its widths; load it with model=<the model it was planned on> "
                "(PruningPlan.load(path, model=...)) to count them again")
        return plan

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the plan as JSON, atomically; refuse to replace an existing file unless ``overwrite``."""
        return write_json_atomically(path, self.to_dict(), overwrite=overwrite)

    @classmethod
    def load(cls, path, *, model=None) -> "PruningPlan":
        """Read a plan saved by :meth:`save`, checked field by field (see :meth:`from_dict`).

        Parameters
        ----------
        path : str or pathlib.Path
        model : keras.Model, optional
            The model the plan was made for; with it the totals are counted again, so a plan whose
            widths were edited by hand reports its true totals.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            The file is empty, not JSON (with line and column), not a plan, or a field is wrong;
            every message starts with the file's path.

        Examples
        --------
        >>> import tempfile, cdp_tutorial as cdp
        >>> vgg = cdp.models.vgg16()
        >>> plan = cdp.plan_pruning(vgg, "FA", target=0.5, seed=0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plan.save(Path(tmp) / "plan.json")
        ...     fields = json.loads(path.read_text())
        ...     fields["widths"]["conv1"] = 4.7
        ...     _ = path.write_text(json.dumps(fields))
        ...     PruningPlan.load(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: .../plan.json: widths['conv1'] must be an integer in [1, 64], got 4.7 (float)
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ValueError(f"{path} is empty; expected a pruning plan saved by PruningPlan.save")
        try:
            d = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON at line {error.lineno} column {error.colno} "
                             f"({error.msg}); is the file cut short or edited by hand?") from None
        return cls.from_dict(d, model=model, source=str(path))


def _checked_fields(d) -> dict:
    """The keyword arguments of :class:`PruningPlan` from a plan dict, every field checked."""
    if not isinstance(d, dict):
        raise ValueError(f"holds a JSON {type(d).__name__}, not a pruning plan (an object with "
                         f"\"format\": {PLAN_FORMAT!r})")
    if d.get("format") != PLAN_FORMAT:
        raise ValueError(f"not a cdp-tutorial pruning plan (\"format\" must be {PLAN_FORMAT!r}, "
                         f"got {d.get('format')!r})")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}; a plan saved by PruningPlan.save has all of "
                         f"{', '.join(REQUIRED_KEYS)}")
    baseline_widths = _width_map(d["baseline_widths"], "baseline_widths", {})
    widths = _width_map(d["widths"], "widths", baseline_widths)
    absent = [name for name in baseline_widths if name not in widths]
    if absent:
        raise ValueError(f"widths lacks the prunable layer(s) {', '.join(absent)}: every prunable layer "
                         "needs a width (to keep a layer whole, give its baseline width)")
    tied = d.get("tied", [])
    if not isinstance(tied, list) or not all(isinstance(t, list) and set(t) <= widths.keys() for t in tied):
        raise ValueError("tied must be a list of lists of layer names from widths")
    for group in tied:
        if len({widths[name] for name in group}) > 1:
            raise ValueError(f"layers {group} are tied by an Add and must share one width, got "
                             f"{[widths[name] for name in group]}")
    history = d["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise ValueError("history must be a list of records (one per iteration of Algorithm 1)")
    return dict(
        model_name=_text(d["model_name"], "model_name"), mode=normalize_mode(d["mode"]),
        target=None if d["target"] is None else check_fraction(d["target"], "target"),
        budget=check_number(d["budget"], "budget", minimum=0, include_minimum=False),
        step=None if d["step"] is None else check_fraction(d["step"], "step"),
        seed=check_seed(d["seed"], allow_none=True),
        coupled=check_choice(d["coupled"], "coupled", ("skip", "tie")),
        round_to=check_int(d["round_to"], "round_to", minimum=1),
        bytes_per_element=check_int(d["bytes_per_element"], "bytes_per_element", minimum=1),
        widths=widths, baseline_widths=baseline_widths,
        baseline=_totals(d["baseline"], "baseline"), final=_totals(d["final"], "final"),
        history=pd.DataFrame.from_records(history, columns=HISTORY_COLUMNS),
        method=_text(d.get("method", "cdp"), "method"), tied=[list(t) for t in tied],
        memory=check_choice(d.get("memory", "stored"), "memory", MEMORY_CHOICES),
        removed_fraction=(None if d.get("removed_fraction") is None
                          else check_number(d["removed_fraction"], "removed_fraction", minimum=0, maximum=1)),
        latency=_latency_record(d.get("latency"), normalize_mode(d["mode"])),
    )


def _latency_record(value, mode):
    """A latency-aware plan's ``{"baseline_ms", "final_ms", "table"}``; ``None`` for the other modes."""
    if mode != "latency" and value is None:
        return None
    if not isinstance(value, dict) or not {"baseline_ms", "final_ms"} <= value.keys():
        raise ValueError(f"latency must be an object with baseline_ms and final_ms for a latency-aware "
                         f"(LA) plan, got {value!r:.80}")
    return {**value, **{k: check_number(value[k], f"latency.{k}", minimum=0) for k in ("baseline_ms", "final_ms")}}


def _width_map(value, name: str, limits: dict) -> dict:
    """``{layer: filters}`` with integer values in ``[1, limits[layer]]`` (``limits`` empty: no upper bound)."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{name} must be a non-empty object {{layer name: filters}}, got {value!r:.80}")
    unknown = [k for k in value if limits and k not in limits]
    if unknown:
        raise ValueError(f"{name} names {', '.join(map(repr, unknown))}, which the plan's baseline_widths "
                         f"do not have; the prunable layers are {', '.join(limits)}")
    return {k: check_int(v, f"{name}[{k!r}]", minimum=1, maximum=limits.get(k)) for k, v in value.items()}


def _totals(value, name: str) -> Totals:
    fields = [f.name for f in dataclasses.fields(Totals)]
    if not isinstance(value, dict) or sorted(value) != sorted(fields):
        raise ValueError(f"{name} must be an object with exactly {', '.join(fields)}, got {value!r:.120}")
    return Totals(**{k: check_int(value[k], f"{name}.{k}", minimum=0) for k in fields})


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def _text(value, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


#: The columns of :attr:`PruningPlan.history`, one row per iteration of Algorithm 1.
HISTORY_COLUMNS = ["iteration", "layer", "probability", "filters_before", "filters_after",
                    "params", "macs", "memory_bytes", "fraction"]
