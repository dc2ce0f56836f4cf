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

    Columns: device, model, mode, planned MACs (M) and parameters (M) of the full-size model,
    MAC reduction (%), epoch time (s), steady epoch time (s), speed-up over the baseline
    (steady time when known), energy per epoch (J), mJ per image, power source, batch-1 latency in
    Keras and LiteRT (ms) and the protocol label. When a device/model/mode was measured several
    times, the latest counts.
    """
    frame = results[results["kind"] == "table6"].sort_values("measured_at")
    keys = ["device_name", "model", "dataset", "label", "mode"]
    frame = frame.groupby(keys, sort=False).tail(1).copy()
    timing = pd.to_numeric(frame["steady_epoch_time_s"]).fillna(frame["epoch_time_s"])
    frame["timing"] = timing
    base = frame[frame["mode"] == "baseline"].set_index(keys[:-1])["timing"]
    baseline_timing = [base.get(tuple(k), float("nan")) for k in frame[keys[:-1]].itertuples(index=False)]
    frame["speedup"] = pd.Series(baseline_timing, index=frame.index) / timing  # baseline time / this time
    order = {"baseline": 0, "params": 1, "flops": 2, "memory": 3}
    frame = frame.assign(_order=frame["mode"].map(order)).sort_values(["device_name", "model", "_order"])
    return pd.DataFrame({
        "device": frame["device_name"], "model": frame["model"], "mode": frame["mode"],
        "MACs (M)": (frame["macs"] / 1e6).round(1), "params (M)": (frame["params"] / 1e6).round(2),
        "MAC reduction (%)": (100 * (1 - frame["macs"] / frame["baseline_macs"])).round(1),
        "epoch (s)": frame["epoch_time_s"].round(1),
        "steady epoch (s)": pd.to_numeric(frame["steady_epoch_time_s"]).round(1),
        "speed-up": frame["speedup"].round(2), "energy (J/epoch)": frame["energy_j"],
        "mJ/image": frame["mj_per_image"], "power source": frame["power_source"].fillna("none (see power_why_not)"),
        "Keras latency (ms)": frame["keras_latency_ms"].round(2),
        "LiteRT latency (ms)": pd.to_numeric(frame.get("litert_latency_ms", pd.Series(index=frame.index,
                                                                                  dtype=float))).round(2),
        "protocol": frame["label"],
    }).reset_index(drop=True)
