"""The device record: what machine a measurement was taken on, Jetson power mode and clocks included.

Every benchmark result carries :func:`device_record`, so a results file sent back from someone's
board says what it was: CPU model and cores, memory, GPU, OS, Python/TensorFlow/Keras versions and,
on a Jetson, the L4T release (``/etc/nv_tegra_release``), the ``nvpmodel`` mode and whether the
clocks are fixed (``jetson_clocks``). :func:`clock_warning` is what the benchmark prints *before*
timing when the clocks may move under it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def parse_nv_tegra_release(text: str) -> str:
    """``"R32.7.1"`` from the first line of ``/etc/nv_tegra_release``.

    Raises
    ------
    ValueError
        If the text does not hold ``# R<major> (release), REVISION: <minor>``.

    Examples
    --------
    >>> parse_nv_tegra_release("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64")
    'R32.7.1'
    """
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if match is None:
        raise ValueError(f"not an nv_tegra_release line (expected '# R35 (release), REVISION: 4.1, ...'): "
                         f"{text.strip()[:120]!r}")
    return f"R{match.group(1)}.{match.group(2)}"


def parse_nvpmodel_query(text: str) -> dict:
    """``{"name": "MAXN", "id": 0}`` from the output of ``nvpmodel -q``.

    Examples
    --------
    >>> parse_nvpmodel_query("NV Power Mode: MAXN\\n0\\n")
    {'name': 'MAXN', 'id': 0}
    """
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    mode_id = re.search(r"^\s*(\d+)\s*$", text, flags=re.MULTILINE)
    if name is None:
        raise ValueError(f"not nvpmodel -q output (no 'NV Power Mode:'): {text.strip()[:120]!r}")
    return {"name": name.group(1), "id": int(mode_id.group(1)) if mode_id else None}


def clocks_state(cpufreq_root="/sys/devices/system/cpu") -> dict:
    """Whether the CPU clocks are pinned, read from cpufreq: ``{"fixed": bool or None, "how": str}``.

    ``jetson_clocks`` (and the ``performance`` governor elsewhere) pins every core's minimum
    frequency to its maximum, so ``scaling_min_freq == scaling_max_freq`` on every core means fixed.
    ``fixed`` is None where cpufreq is not visible (many VMs and containers).
    """
    root = Path(cpufreq_root)
    cores = sorted(root.glob("cpu[0-9]*/cpufreq"))
    if not cores:
        return {"fixed": None, "how": f"unknown: no cpufreq under {root} (a VM or container?)"}
    pinned, governors = [], set()
    for core in cores:
        try:
            low, high = (core / "scaling_min_freq").read_text().strip(), (core / "scaling_max_freq").read_text().strip()
            governors.add((core / "scaling_governor").read_text().strip())
        except OSError as error:
            return {"fixed": None, "how": f"unknown: cannot read {core} ({error.strerror})"}
        pinned.append(low == high)
    fixed = all(pinned) or governors == {"performance"}
    return {"fixed": fixed, "how": f"cpufreq: governor {'/'.join(sorted(governors))}, "
                                   f"{sum(pinned)}/{len(pinned)} cores with min = max frequency"}


def clock_warning(record: dict) -> str | None:
    """The warning to print before timing when clocks are not fixed (None when they are)."""
    clocks = record.get("clocks", {})
    if clocks.get("fixed") is True:
        return None
    advice = ("on a Jetson run 'sudo nvpmodel -m 0 && sudo jetson_clocks' first"
              if record.get("jetson") else "set the 'performance' cpufreq governor if you can")
    state = "not fixed" if clocks.get("fixed") is False else "not known to be fixed"
    return f"warning: CPU clocks are {state} ({clocks.get('how')}): timings may vary; {advice}."


def _run(command) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _gpus() -> list[str]:
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names


def _jetson() -> dict | None:
    if not NV_TEGRA_RELEASE.exists():
        return None
    info = {"l4t": None, "board": None, "nvpmodel": None}
    try:
        info["l4t"] = parse_nv_tegra_release(NV_TEGRA_RELEASE.read_text())
    except (OSError, ValueError) as error:
        info["l4t"] = f"unreadable: {error}"
    if DEVICE_TREE_MODEL.exists():
        info["board"] = DEVICE_TREE_MODEL.read_text(errors="replace").strip("\x00\n ")
    query = _run(["nvpmodel", "-q"])
    try:
        info["nvpmodel"] = parse_nvpmodel_query(query) if query else "nvpmodel not found or no output"
    except ValueError as error:
        info["nvpmodel"] = str(error)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _distribution_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:  # a missing distribution is recorded, not fatal
        return None


def device_record() -> dict:
    """Describe this machine for a results file: the project's one device record.

    Every measurement carries it: :func:`cdp_tutorial.edge.measure` (latency on this CPU) and
    :func:`cdp_tutorial.devices.run_device_benchmark` (Table 6 on any device).

    Returns
    -------
    dict
        ``hostname_hash`` (a stable, anonymous machine id), ``platform``, ``machine``,
        ``cpu_model``, ``logical_cores``, ``physical_cores``, ``usable_cores`` (this process's CPU
        affinity), ``memory_total_gb``, ``python``, ``tensorflow``, ``keras``, ``ai_edge_litert``
        (installed versions, None if absent), ``gpus`` (the names TensorFlow sees), ``versions``
        (Python, TensorFlow, Keras, NumPy, cdp_tutorial), ``clocks`` (:func:`clocks_state`) and
        ``jetson``: None off a Jetson, else ``{"l4t", "board", "nvpmodel"}``.

    Examples
    --------
    >>> record = device_record()
    >>> record["usable_cores"] >= 1
    True
    """
    import psutil

    from cdp_tutorial.training.result import library_versions

    # a stable, anonymous machine id: the same on every run (Python's hash() is salted per process)
    machine_id = hashlib.sha256(platform.node().encode("utf-8")).hexdigest()[:8]
    return {"hostname_hash": machine_id, "platform": platform.platform(), "machine": platform.machine(),
            "cpu_model": _cpu_model(), "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 2),
            "python": platform.python_version(),
            **{module: _distribution_version(module.replace("_", "-"))
               for module in ("tensorflow", "keras", "ai_edge_litert")},
            "gpus": _gpus(), "versions": library_versions(), "clocks": clocks_state(), "jetson": _jetson()}


def device_slug(record: dict) -> str:
    """A file-name-safe name for a device: the Jetson board, else the first GPU, else the CPU."""
    jetson = record.get("jetson") or {}
    name = jetson.get("board") or (record.get("gpus") or [None])[0] or record.get("cpu_model") or "device"
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return f"{slug[:48]}-{record.get('usable_cores')}cores"
