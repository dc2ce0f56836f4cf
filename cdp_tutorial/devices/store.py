"""Device results files: append records safely, load any set of them, and draw Table 6.

A results file is JSON lines, one measurement per line, each with its device record. The committed
files live in ``data/devices/`` (see its README for sending yours back in a pull request); a user's
own files can be loaded beside them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cdp_tutorial.devices.bench import table6_protocol_label
from cdp_tutorial.store import RecordStore

#: Where committed device results live, relative to the repository root.
DEVICES_DIR = Path("data") / "devices"


def append_record(path, record: dict) -> Path:
    """Add one record to a device results file (:class:`cdp_tutorial.store.RecordStore`: locked, never rewritten)."""
    store = RecordStore(path)
    store.append(record)
    return store.path


def _device_name(device: dict) -> str:
    jetson = device.get("jetson") or {}
    if jetson.get("board"):
        mode = jetson.get("nvpmodel") or {}
        name = mode.get("name") if isinstance(mode, dict) else None
        return f"{jetson['board']} ({jetson.get('l4t')}{', ' + name if name else ''})"
    gpus = device.get("gpus") or []
    cpu = f"{device.get('cpu_model')}, {device.get('usable_cores')} cores"
    return f"{gpus[0]} + {cpu}" if gpus else cpu


def load_results(*sources) -> pd.DataFrame:
    """Every record from the given JSON-lines files and folders (``*.jsonl`` inside), as one table.

    Adds ``device_name`` (a readable summary of the device record) and ``source_file``.

    Raises
    ------
    FileNotFoundError
        If a source does not exist.
    ValueError
        If a line is not JSON (the message names the file and line number).
    """
    rows = []
    for source in sources:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"no device results at {source}")
        for path in sorted(source.glob("*.jsonl")) if source.is_dir() else [source]:
            rows += [{**record, "device_name": _device_name(record.get("device", {})),
                      "source_file": str(path)} for record in RecordStore(path).records()]
    return pd.DataFrame(rows)


#: The settings a Table 6 record's protocol label is made from (:func:`table6_protocol_label`).
LABEL_SETTINGS = ("model", "dataset", "train_size", "width_multiplier", "epochs", "batch_size", "iterations", "step")


def _current_label(record: pd.Series) -> str:
    # the label is rebuilt from the stored settings, so records written before the label's wording
    # changed (it gained the step p) group with new runs of the same settings
    settings = {key: record.get(key) for key in LABEL_SETTINGS}
    if any(value is None or (isinstance(value, float) and pd.isna(value))
           for key, value in settings.items() if key != "train_size"):
        return record["label"]  # settings not all stored: keep the label the record was written with
    if isinstance(settings["train_size"], float):
        settings["train_size"] = None if pd.isna(settings["train_size"]) else int(settings["train_size"])
    return table6_protocol_label(settings)


def table6(results: pd.DataFrame, rounded: bool = True) -> pd.DataFrame:
    """The paper's Table 6 from device results: per device, model and mode, complexity and time.

    Columns: device, model, mode, the full-size model's planned MACs (M), parameters (M) and
    memory (MiB, the paper's "Memory (MBs)" column: parameters and activations as
    :func:`cdp_tutorial.profile` counts them), MAC reduction (%) of the full-size model (the
    paper's), the **trained** model's MACs (M) and MAC reduction (%) against the trained baseline
    (they differ when the benchmark trains at a width multiplier), ``ideal speed-up`` (the
    trained baseline's MACs over the trained model's: the speed-up if time followed MACs),
    ``runs`` (how many times that device/model/mode was measured), epoch time (s), steady epoch
    time (s), speed-up over the baseline (steady time when known), energy per epoch (J), mJ per
    image, power source, batch-1 latency in Keras and LiteRT (ms) and the protocol label.

    Rows are grouped by device, model, dataset, mode and the protocol label **rebuilt from each
    record's stored settings** (:func:`table6_protocol_label`), so a repeat of the same settings
    joins its row even when it was written by a version whose label was worded differently.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`load_results`; only records of kind ``"table6"`` are used.
    rounded : bool, default True
        Round the measured columns for reading (times to 0.1 s, speed-ups and latencies to 0.01);
        ``False`` keeps them exact, for charts and further arithmetic.

    A row measured several times shows the **median** of its runs, and ``speed-up low`` /
    ``speed-up high`` bound its speed-up by the runs' extremes (the baseline's slowest run over
    the mode's fastest, and the other way round); with a single run of either they are empty
    (NaN), since one run shows no spread.

    Examples
    --------
    >>> from cdp_tutorial.data import repository_file
    >>> table = table6(load_results(repository_file("data/devices/cpu-amd-epyc-2cores-quick.jsonl")))
    >>> vgg16 = table[table["model"] == "vgg16"]
    >>> vgg16["mode"].tolist(), vgg16["memory (MiB)"].tolist(), vgg16["runs"].tolist()
    (['baseline', 'params', 'flops', 'memory'], [59.28, 19.46, 28.39, 19.89], [1, 1, 1, 1])
    """
    frame = results[results["kind"] == "table6"].copy()
    frame["label"] = frame.apply(_current_label, axis=1)
    if "trained_macs" not in frame:
        frame["trained_macs"] = float("nan")
    keys = ["device_name", "model", "dataset", "label", "mode"]
    frame["timing"] = pd.to_numeric(frame["steady_epoch_time_s"]).fillna(frame["epoch_time_s"])
    numeric = ["epoch_time_s", "steady_epoch_time_s", "energy_j", "mj_per_image", "keras_latency_ms",
               "litert_latency_ms"]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column]) if column in frame else float("nan")
    grouped = frame.groupby(keys, sort=False)
    rows = grouped.agg(**{c: (c, "median") for c in numeric + ["timing"]},
                       fastest=("timing", "min"), slowest=("timing", "max"), runs=("timing", "size"),
                       macs=("macs", "first"), params=("params", "first"), memory_bytes=("memory_bytes", "first"),
                       baseline_macs=("baseline_macs", "first"), trained_macs=("trained_macs", "first"),
                       power_source=("power_source", "last")).reset_index()
    base = rows[rows["mode"] == "baseline"].set_index(keys[:-1])
    matched = base.reindex(pd.MultiIndex.from_frame(rows[keys[:-1]]))
    rows["speedup"] = matched["timing"].to_numpy() / rows["timing"]  # baseline time / this time
    rows["ideal"] = pd.to_numeric(matched["trained_macs"]).to_numpy() / pd.to_numeric(rows["trained_macs"])
    spread = (matched["runs"].to_numpy() > 1) & (rows["runs"] > 1)
    rows["speedup_low"] = (matched["fastest"].to_numpy() / rows["slowest"]).where(spread)
    rows["speedup_high"] = (matched["slowest"].to_numpy() / rows["fastest"]).where(spread)
    order = {"baseline": 0, "params": 1, "flops": 2, "memory": 3}
    rows = rows.assign(_order=rows["mode"].map(order)).sort_values(["device_name", "model", "_order"])
    measured = (lambda column, digits: column.round(digits)) if rounded else (lambda column, digits: column)
    return pd.DataFrame({
        "device": rows["device_name"], "model": rows["model"], "mode": rows["mode"],
        "MACs (M)": (rows["macs"] / 1e6).round(1), "params (M)": (rows["params"] / 1e6).round(2),
        "memory (MiB)": (rows["memory_bytes"] / 2**20).round(2),
        "MAC reduction (%)": (100 * (1 - rows["macs"] / rows["baseline_macs"])).round(1),
        "trained MACs (M)": (pd.to_numeric(rows["trained_macs"]) / 1e6).round(2),
        "trained MAC reduction (%)": (100 * (1 - 1 / rows["ideal"])).round(1),
        "ideal speed-up": measured(rows["ideal"], 2),
        "runs": rows["runs"].astype(int),
        "epoch (s)": measured(rows["epoch_time_s"], 1), "steady epoch (s)": measured(rows["steady_epoch_time_s"], 1),
        "speed-up": measured(rows["speedup"], 2), "speed-up low": measured(rows["speedup_low"], 2),
        "speed-up high": measured(rows["speedup_high"], 2), "energy (J/epoch)": rows["energy_j"],
        "mJ/image": rows["mj_per_image"], "power source": rows["power_source"].fillna("none (see power_why_not)"),
        "Keras latency (ms)": measured(rows["keras_latency_ms"], 2),
        "LiteRT latency (ms)": measured(rows["litert_latency_ms"], 2),
        "protocol": rows["label"],
    }).reset_index(drop=True)
