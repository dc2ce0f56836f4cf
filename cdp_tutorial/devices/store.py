"""Device results files: append records safely, load any set of them, and draw Table 6.

A results file is JSON lines, one measurement per line, each with its device record. The committed
files live in ``data/devices/`` (see its README for sending yours back in a pull request); a user's
own files can be loaded beside them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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


def table6(results: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 6 from device results: per device, model and mode, complexity and time.

    Columns: device, model, mode, the full-size model's planned MACs (M), parameters (M) and
    memory (MiB, the paper's "Memory (MBs)" column: parameters and activations as
    :func:`cdp_tutorial.profile` counts them), MAC reduction (%), ``runs`` (how many times that
    device/model/mode was measured), epoch time (s), steady epoch time (s), speed-up over the
    baseline (steady time when known), energy per epoch (J), mJ per image, power source, batch-1
    latency in Keras and LiteRT (ms) and the protocol label.

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
                       baseline_macs=("baseline_macs", "first"),
                       power_source=("power_source", "last")).reset_index()
    base = rows[rows["mode"] == "baseline"].set_index(keys[:-1])
    matched = base.reindex(pd.MultiIndex.from_frame(rows[keys[:-1]]))
    rows["speedup"] = matched["timing"].to_numpy() / rows["timing"]  # baseline time / this time
    spread = (matched["runs"].to_numpy() > 1) & (rows["runs"] > 1)
    rows["speedup_low"] = (matched["fastest"].to_numpy() / rows["slowest"]).where(spread)
    rows["speedup_high"] = (matched["slowest"].to_numpy() / rows["fastest"]).where(spread)
    order = {"baseline": 0, "params": 1, "flops": 2, "memory": 3}
    rows = rows.assign(_order=rows["mode"].map(order)).sort_values(["device_name", "model", "_order"])
    return pd.DataFrame({
        "device": rows["device_name"], "model": rows["model"], "mode": rows["mode"],
        "MACs (M)": (rows["macs"] / 1e6).round(1), "params (M)": (rows["params"] / 1e6).round(2),
        "memory (MiB)": (rows["memory_bytes"] / 2**20).round(2),
        "MAC reduction (%)": (100 * (1 - rows["macs"] / rows["baseline_macs"])).round(1),
        "runs": rows["runs"].astype(int),
        "epoch (s)": rows["epoch_time_s"].round(1), "steady epoch (s)": rows["steady_epoch_time_s"].round(1),
        "speed-up": rows["speedup"].round(2), "speed-up low": rows["speedup_low"].round(2),
        "speed-up high": rows["speedup_high"].round(2), "energy (J/epoch)": rows["energy_j"],
        "mJ/image": rows["mj_per_image"], "power source": rows["power_source"].fillna("none (see power_why_not)"),
        "Keras latency (ms)": rows["keras_latency_ms"].round(2),
        "LiteRT latency (ms)": rows["litert_latency_ms"].round(2),
        "protocol": rows["label"],
    }).reset_index(drop=True)
