"""The device benchmark: the paper's Table 6 protocol and batch-1 inference latency, on any device.

Table 6 of the paper (§4.4.2) trains AlexNet (CIFAR-100) and VGG-16 (CIFAR-10) on a Jetson Nano for
**1 epoch at batch 5**: the baseline, and each mode's model pruned by **up to 50 iterations** of
Algorithm 1 (the paper gives no step ``p``; :data:`DEFAULT_STEP` is ours), reporting training time
and complexity per mode. :func:`run_device_benchmark` does the
same on whatever it runs on -- CPU, CUDA GPU, Jetson -- and for each model also times batch-1
inference in Keras and LiteRT (through :func:`cdp_tutorial.edge.measure`); every measurement is
appended to a JSON-lines results file with the device record
(:func:`cdp_tutorial.devices.record.device_record`) and, where a sensor exists, the energy
(:mod:`cdp_tutorial.devices.power`).

Two epoch times are recorded: ``epoch_time_s`` is the first epoch as a user waits for it (with
TensorFlow's graph tracing), ``steady_epoch_time_s`` extrapolates the time between the end of the
first batch and the end of the last to the whole epoch, leaving tracing out.
"""

from __future__ import annotations

import dataclasses
import time


from cdp_tutorial.checks import check_int, check_number, check_seed
from cdp_tutorial.results import BASELINE

#: The paper's Table 6 protocol (§4.4.2): what the paper states, and nothing else.
TABLE6_SETTINGS = {"epochs": 1, "batch_size": 5, "iterations": 50,
                   "datasets": {"alexnet": "cifar100", "vgg16": "cifar10"}}
#: Algorithm 1's p (filters removed from the drawn layer per iteration). The paper gives no value
#: for Table 6 (nor one we could recover elsewhere): 10 % is this package's choice, and every
#: record's label states the step it used.
DEFAULT_STEP = 0.1
#: ``--quick``: several minutes, not hours -- about 8 on the committed shared 2-core AMD EPYC VM (its
#: records span 7 minutes, after a first model whose epoch alone took 49 s; LiteRT exports included,
#: other jobs running); not the paper's protocol, and labelled so.
QUICK_SETTINGS = {"models": ("vgg16", "alexnet"), "dataset": "fixture", "train_size": 100,
                  "test_size": 20, "width_multiplier": 0.25, "latency_runs": 20}


def iteration_limited_plan(model, mode, iterations: int = 50, *, step: float = DEFAULT_STEP, seed: int = 0):
    """Algorithm 1 stopped after ``iterations`` iterations (the paper's "up to 50 iterations per mode").

    :func:`cdp_tutorial.plan_pruning` stops at a complexity budget; here the loop runs towards the
    lowest reachable budget and the plan is cut after ``iterations`` steps. The layer draws depend
    only on the seed, not on the budget, so this is exactly the plan a loop stopped at N would make.

    Returns
    -------
    PruningPlan
        With ``widths``, ``final`` and ``history`` after at most ``iterations`` steps.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> plan = iteration_limited_plan(cdp.models.vgg16(), "FA", 50, seed=0)
    >>> len(plan.history)
    50
    """
    import cdp_tutorial as cdp
    from cdp_tutorial.pruning import PruningProblem
    from cdp_tutorial.sampling import normalize_mode

    iterations = check_int(iterations, "iterations", minimum=1)
    mode = normalize_mode(mode)
    problem = PruningProblem(model)
    baseline = problem.total(problem.baseline_widths, mode)
    lowest = problem.total(problem.minimum_widths(), mode) / baseline
    plan = cdp.plan_pruning(model, mode, target=min(0.999, lowest * 1.001 + 1e-9), step=step, seed=seed)
    history = plan.history.iloc[:iterations].reset_index(drop=True)
    layers_of = dict(zip(problem.unit_names, problem.unit_layers))
    column_of = dict(zip(problem.unit_names, problem.unit_columns))
    widths = problem.baseline_widths.copy()
    for unit, after in zip(history["layer"], history["filters_after"]):
        widths[column_of[unit]] = after
    by_layer = {name: int(widths[column_of[u]]) for u, names in layers_of.items() for name in names}
    return dataclasses.replace(plan, widths=by_layer, final=problem.totals(widths), history=history,
                               target=None, budget=float(problem.total(widths, mode)))


class EpochClock:
    """A Keras callback factory that times each epoch's training part and marks the power meter."""

    def __new__(cls, meter):
        import keras

        class _Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs = []  # per epoch: start, first batch end, last batch end, batches, marks

            def on_epoch_begin(self, epoch, logs=None):
                self.epochs.append({"start": time.monotonic(), "mark_start": meter.read(),
                                    "first_batch_end": None, "end": None, "batches": 0})

            def on_train_batch_end(self, batch, logs=None):
                now = time.monotonic()
                current = self.epochs[-1]
                current["batches"] += 1
                current["first_batch_end"] = current["first_batch_end"] or now
                current["end"] = now

            def on_test_begin(self, logs=None):  # validation starts: training part of the epoch is over
                if self.epochs and "mark_end" not in self.epochs[-1]:
                    self.epochs[-1]["mark_end"] = meter.read()
                    self.epochs[-1]["end"] = time.monotonic()

            def on_epoch_end(self, epoch, logs=None):
                if "mark_end" not in self.epochs[-1]:
                    self.epochs[-1]["mark_end"] = meter.read()

        return _Clock()


def inference_latency(model, images, runs: int = 50, threads: int = 2, litert: bool = True) -> dict:
    """Batch-1 inference latency of ``model`` in Keras and as an fp32 LiteRT file, in ms.

    Both are measured by :func:`cdp_tutorial.edge.measure` (the project's one latency measurement):
    median and 90th percentile over ``runs`` images after a warm-up. A model that cannot be exported
    or run in LiteRT records why instead of a number; ``litert=False`` skips the export (it takes
    seconds per model).
    """
    import tempfile

    from cdp_tutorial.edge import export_litert, measure

    runs = check_int(runs, "runs", minimum=1)
    keras_run = measure(model, images, n_images=runs, warmup=5, rapl=False)
    out = {"keras_latency_ms": keras_run.median_ms, "keras_latency_p90_ms": keras_run.p90_ms,
           "latency_runs": runs, "litert_latency_ms": None, "litert_latency_p90_ms": None,
           "litert_threads": threads, "litert_why_not": None}
    if not litert:
        out["litert_why_not"] = "LiteRT switched off (--no-litert)"
        return out
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = export_litert(model, f"{folder}/model.tflite", precision="fp32")
            litert_run = measure(path, images, n_images=runs, warmup=5, threads=threads, rapl=False)
        out.update(litert_latency_ms=litert_run.median_ms, litert_latency_p90_ms=litert_run.p90_ms)
    except Exception as error:  # noqa: BLE001 -- no LiteRT runtime or a failed export is recorded, not fatal
        out["litert_why_not"] = f"{type(error).__name__}: {error}"
    return out


def table6_protocol_label(settings: dict) -> str:
    """Whether a device benchmark followed the paper's Table 6 protocol and, if not, how it differed.

    Table 6 fixes the data (AlexNet: CIFAR-100, VGG-16: CIFAR-10, whole training split), 1 epoch at
    batch 5 and up to 50 Algorithm 1 iterations per mode. It gives no step p, so the label states the
    step used, whatever it is. (Training runs of a sweep have their own label,
    :func:`cdp_tutorial.experiments.protocol_label`: a different protocol, §4's 150 epochs.)

    Examples
    --------
    >>> print(table6_protocol_label({"model": "vgg16", "dataset": "cifar10", "train_size": None,
    ...                              "width_multiplier": 1, "epochs": 1, "batch_size": 5,
    ...                              "iterations": 50, "step": 0.1}))
    Table 6 protocol: 1 epoch at batch 5, pruned up to 50 iterations per mode (step p = 0.1: the paper gives none)
    """
    paper = TABLE6_SETTINGS
    differences = []
    if settings["dataset"] != paper["datasets"].get(settings["model"]):
        differences.append(f"{settings['dataset']} data")
    if settings["train_size"] is not None:
        differences.append(f"{settings['train_size']} training images")
    if settings["width_multiplier"] != 1:
        differences.append(f"trained at x{settings['width_multiplier']:g} width")
    for key in ("epochs", "batch_size", "iterations"):
        if settings[key] != paper[key]:
            differences.append(f"{key.replace('_', ' ')} {settings[key]}")
    step = f"step p = {settings['step']:g}: the paper gives none"
    if not differences:
        return f"Table 6 protocol: 1 epoch at batch 5, pruned up to 50 iterations per mode ({step})"
    return "not the paper's Table 6 protocol: " + ", ".join(differences) + f" ({step})"


def _trained_model(name, plan, num_classes, width_multiplier, seed):
    import keras

    import cdp_tutorial as cdp

    keras.utils.set_random_seed(seed)
    widths = plan.widths if plan else {}
    if width_multiplier == 1:
        return cdp.models.build_model(name, num_classes=num_classes, widths=widths or None)
    narrow = {layer: max(1, round(w * width_multiplier)) for layer, w in widths.items()}
    return cdp.models.build_model(name, num_classes=num_classes, widths=narrow, width_multiplier=width_multiplier)


def benchmark_model(name, data, *, modes=("PA", "FA", "MA"), epochs=1, batch_size=5, iterations=50,
                    step=DEFAULT_STEP, seed=0, width_multiplier=1.0, latency_runs=50, meter=None, device=None,
                    note=None, train_size=None, litert=True, say=print) -> list[dict]:
    """Table 6 for one model on this device: the baseline and each mode, trained and timed.

    ``data`` is a :class:`cdp_tutorial.data.Dataset`; ``train_size`` is only recorded (the subset
    size ``data`` was loaded with, None for the whole split). Returns one record per mode
    (``mode="baseline"`` first); see :func:`run_device_benchmark` for the rest.
    """
    import cdp_tutorial as cdp
    from cdp_tutorial.devices.power import NoPowerMeter
    from cdp_tutorial.devices.record import device_record
    from cdp_tutorial.training import train

    meter = meter or NoPowerMeter("no power meter given")
    device = device or device_record()
    from cdp_tutorial.edge import split_arrays

    full = cdp.models.build_model(name, num_classes=data.num_classes)
    baseline = cdp.profile(full).totals
    images_for_latency = split_arrays(data, "test", limit=max(1, min(latency_runs, len(data.y_test))))[0]
    settings = {"model": name, "dataset": data.name, "train_size": train_size, "epochs": epochs,
                "batch_size": batch_size, "iterations": iterations, "step": step, "seed": seed,
                "width_multiplier": width_multiplier}
    records = []
    for mode in (BASELINE, *modes):
        plan = None if mode == BASELINE else iteration_limited_plan(full, mode, iterations, step=step, seed=seed)
        model = _trained_model(name, plan, data.num_classes, width_multiplier, seed)
        clock = EpochClock(meter)
        result = train(model, data, "paper", epochs=epochs, batch_size=batch_size, seed=seed, verbose=0,
                       callbacks=[clock], deterministic=False)  # speed, not bit-for-bit repeats, is measured
        first = clock.epochs[0]
        steps = first["batches"]
        steady = ((first["end"] - first["first_batch_end"]) * steps / (steps - 1)) if steps > 1 else None
        energy = meter.measure(first["mark_start"], first["mark_end"])
        totals = plan.final if plan else baseline
        images = len(data.y_train)
        record = {
            "kind": "table6", **settings, "mode": mode if plan is None else plan.mode,
            "iterations_done": 0 if plan is None else len(plan.history),
            "label": table6_protocol_label(settings), "dataset_description": data.description,
            "params": totals.params, "macs": totals.macs, "flops": totals.flops, "memory_bytes": totals.memory_bytes,
            "baseline_params": baseline.params, "baseline_macs": baseline.macs,
            "baseline_memory_bytes": baseline.memory_bytes,
            "trained_params": int(model.count_params()), "trained_macs": cdp.profile(model).totals.macs,
            "epoch_time_s": first["end"] - first["start"], "steady_epoch_time_s": steady,
            "images_per_epoch": images, "test_accuracy": result.test_accuracy,
            **energy.to_dict(),
            "mj_per_image": None if energy.joules is None else 1000 * energy.joules / images,
            **inference_latency(model, images_for_latency, runs=latency_runs, litert=litert),
            "device": device, "note": note, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        records.append(record)
        say(f"{name} {record['mode']:>8}: {record['macs'] / 1e6:8.1f} M MACs (planned), epoch "
            f"{record['epoch_time_s']:.1f} s (steady {steady or float('nan'):.1f} s), batch-1 latency "
            f"{record['keras_latency_ms']:.2f} ms Keras"
            + (f", {record['litert_latency_ms']:.2f} ms LiteRT" if record["litert_latency_ms"] else "")
            + ", energy "
            + (f"{energy.joules:.1f} J ({energy.source})" if energy.joules is not None else "n/a"))
    return records


def run_device_benchmark(*, models=("vgg16", "alexnet"), modes=("PA", "FA", "MA"), dataset=None,
                         train_size=None, test_size=None, epochs=1, batch_size=5, iterations=50,
                         step=DEFAULT_STEP, seed=0, width_multiplier=1.0, latency_runs=50, power="auto",
                         interval_ms=100, store=None, note=None, litert=True, say=print) -> list[dict]:
    """Run the Table 6 protocol and batch-1 latency on this device; append every record to ``store``.

    Parameters
    ----------
    models : sequence of str
        Model names (``cdp_tutorial.models.MODELS``); the paper uses VGG-16 and AlexNet.
    modes : sequence of str
        Pruning modes besides the baseline: ``PA``, ``FA``, ``MA``.
    dataset : str, optional
        One dataset for every model; default the paper's (AlexNet: CIFAR-100, VGG-16: CIFAR-10).
    train_size, test_size : int, optional
        Class-balanced subsets (default: whole splits).
    epochs, batch_size, iterations, step, seed
        Table 6's protocol: 1 epoch, batch 5, up to 50 iterations of Algorithm 1. The paper gives no
        step ``p``; 0.1 (:data:`DEFAULT_STEP`) is this package's choice, stated in every label.
    width_multiplier : float, default 1.0
        Train every planned width times this (complexities stay the full-size model's).
    latency_runs : int, default 50
        Timed batch-1 inferences per model.
    litert : bool, default True
        Also export each model to LiteRT (fp32) and time it there.
    power : str, default "auto"
        Power source (:func:`cdp_tutorial.devices.power.open_power_meter`); the meter runs (one
        sampler, one connection) for the whole benchmark and is stopped at its end, errors included.
    store : str or pathlib.Path, optional
        JSON-lines file every record is appended to (atomically); None keeps them in memory only.
    note : str, optional
        Free text kept with each record (e.g. "other jobs were running").

    Returns
    -------
    list of dict
        One record per model and mode: complexities (planned, full-size, and trained), epoch times,
        energy (or why not), latency, the protocol label and the device record.

    Raises
    ------
    ValueError
        For an unknown model or mode, or settings out of range (checked before any training).
    """
    from cdp_tutorial.data import load_dataset
    from cdp_tutorial.devices.power import open_power_meter
    from cdp_tutorial.devices.record import clock_warning, device_record
    from cdp_tutorial.store import RecordStore  # devices.store reads these files (and imports this module)
    from cdp_tutorial.models import MODELS
    from cdp_tutorial.sampling import normalize_mode

    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}: choose from {sorted(MODELS)}")
    modes = [normalize_mode(m) for m in modes]
    for value, label in ((epochs, "epochs"), (batch_size, "batch_size"), (iterations, "iterations"),
                         (latency_runs, "latency_runs")):
        check_int(value, label, minimum=1)
    check_number(width_multiplier, "width_multiplier", minimum=0, include_minimum=False, maximum=1)
    check_seed(seed)

    device = device_record()
    warning = clock_warning(device)
    if warning:
        say(warning)
    records = []
    with open_power_meter(power, interval_ms=interval_ms) as meter:
        for name in models:
            data = load_dataset(dataset or TABLE6_SETTINGS["datasets"].get(name, "cifar10"),
                                train_size=train_size, test_size=test_size, seed=seed)
            for record in benchmark_model(name, data, modes=modes, epochs=epochs, batch_size=batch_size,
                                          iterations=iterations, step=step, seed=seed,
                                          width_multiplier=width_multiplier, latency_runs=latency_runs,
                                          meter=meter, device=device, note=note, train_size=train_size,
                                          litert=litert, say=say):
                if store is not None:
                    RecordStore(store).append(record)  # locked, appended, never rewritten
                records.append(record)
    return records
