"""Power and energy where the device has a sensor, each figure naming its source.

One interface, four sources, chosen in this order by :func:`open_power_meter` (``source="auto"``):

==============  ==========================================================  ========================
source          what it reads                                               where
==============  ==========================================================  ========================
``tegrastats``  the module's input rail, sampled in the background            NVIDIA Jetson (as root)
``jtop``        jetson-stats' total power, polled in the background          Jetson with jetson-stats
``nvml``        the GPU's energy counter (``nvmlDeviceGetTotalEnergy...``)    NVIDIA GPUs (pynvml)
``rapl``        the CPU package energy counter (:class:`cdp_tutorial.edge.RaplMeter`)  x86 Linux, if readable
==============  ==========================================================  ========================

A meter is used as ``mark = meter.read()`` before and after the work, then
``meter.measure(before, after)`` gives a :class:`Energy` with joules, mean watts and the source.
When no source works, the meter is a :class:`NoPowerMeter` whose ``reason`` says why for each
source tried, and every figure is ``None`` with that reason -- never a zero.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass

from cdp_tutorial.checks import check_choice
from cdp_tutorial.devices.tegrastats import TegrastatsSampler, integrate_power

SOURCES = ("auto", "tegrastats", "jtop", "nvml", "rapl", "none")


@dataclass
class Energy:
    """Energy over one measured interval: ``joules`` and ``mean_watts`` (None when unknown),
    ``source`` (what measured it) and ``why_not`` (why there is no figure)."""

    joules: float | None
    mean_watts: float | None
    source: str | None
    why_not: str | None = None

    def to_dict(self) -> dict:
        return {"energy_j": self.joules, "mean_power_w": self.mean_watts,
                "power_source": self.source, "power_why_not": self.why_not}


class PowerMeter:
    """Base class: ``read()`` a mark, ``measure(a, b)`` the energy between two marks."""

    source = "none"

    def start(self):
        return self

    def stop(self) -> None:
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def read(self):
        return time.monotonic()

    def measure(self, before, after) -> Energy:
        raise NotImplementedError


class NoPowerMeter(PowerMeter):
    """No sensor: every measurement says why instead of reporting zero."""

    def __init__(self, reason: str):
        self.reason = reason

    def measure(self, before, after) -> Energy:
        return Energy(None, None, None, self.reason)


class TegrastatsMeter(PowerMeter):
    """The Jetson input rail from ``tegrastats --interval N`` (see :mod:`cdp_tutorial.devices.tegrastats`)."""

    source = "tegrastats"

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats"):
        self.sampler = TegrastatsSampler(interval_ms=interval_ms, command=command)

    def start(self):
        self.sampler.start()
        if not self.sampler.wait_for_samples(1, timeout_s=max(5.0, self.sampler.interval_ms / 100)):
            self.sampler.stop()
            raise RuntimeError(f"tegrastats printed nothing within a few intervals; errors: {self.sampler.errors[:2]}")
        return self

    def stop(self) -> None:
        self.sampler.stop()

    def measure(self, before, after) -> Energy:
        # the sample after the interval may still be on its way: wait up to two intervals for it
        deadline = time.monotonic() + 2 * self.sampler.interval_ms / 1000 + 0.5
        while time.monotonic() < deadline and (not self.sampler.samples or self.sampler.samples[-1][0] < after):
            time.sleep(self.sampler.interval_ms / 4000)
        try:
            joules, source = self.sampler.energy_j(before, after)
        except ValueError as error:
            return Energy(None, None, "tegrastats", str(error))
        return Energy(joules, joules / (after - before), source)


class PollingMeter(PowerMeter):
    """Polls a ``watts()`` function in a thread and integrates it (jtop)."""

    def __init__(self, watts, source: str, interval_s: float = 0.1, close=None):
        self._watts, self.source, self.interval_s, self._close = watts, source, interval_s, close
        self.times, self.milliwatts = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name=f"{source}-poll")

    def start(self):
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.times.append(time.monotonic())
            self.milliwatts.append(1000.0 * self._watts())
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._close:
            self._close()

    def measure(self, before, after) -> Energy:
        time.sleep(min(2 * self.interval_s, 1.0))  # let one sample land after the interval
        try:
            joules = integrate_power(list(self.times), list(self.milliwatts), before, after)
        except ValueError as error:
            return Energy(None, None, self.source, str(error))
        return Energy(joules, joules / (after - before), self.source)


class CounterMeter(PowerMeter):
    """An energy counter in joules (NVML, RAPL): a mark is ``(time, joules)``."""

    def __init__(self, read_joules, source: str, wrap_j: float | None = None):
        self._joules, self.source, self.wrap_j = read_joules, source, wrap_j

    def read(self):
        return time.monotonic(), self._joules()

    def measure(self, before, after) -> Energy:
        (t0, e0), (t1, e1) = before, after
        joules = e1 - e0
        if joules < 0 and self.wrap_j:  # the counter wrapped around once
            joules += self.wrap_j
        return Energy(joules, joules / (t1 - t0) if t1 > t0 else None, self.source)


def _jtop_meter(interval_s):
    from jtop import jtop  # jetson-stats

    jetson = jtop()
    jetson.start()
    return PollingMeter(lambda: jetson.power["tot"]["power"] / 1000.0, "jtop power['tot'] (board total)",
                        interval_s, close=jetson.close)


def _nvml_meter():
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    name = pynvml.nvmlDeviceGetName(handle)
    pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises NotSupported on Tegra and old GPUs
    return CounterMeter(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0,
                        f"NVML total energy counter of GPU 0 ({name}): the GPU board only")


def _rapl_meter():
    from cdp_tutorial.edge import RaplMeter  # the project's one RAPL reader

    since_start = RaplMeter()
    if not since_start.available:
        raise FileNotFoundError(since_start.note)
    since_start.start()
    # stop() returns the energy since start() and may be called again: marks are cumulative joules
    return CounterMeter(since_start.stop, "RAPL CPU package energy (not the whole machine; other processes included)")


def open_power_meter(source: str = "auto", *, interval_ms: int = 100) -> PowerMeter:
    """The first power source that works here (or the one named), started.

    Parameters
    ----------
    source : {"auto", "tegrastats", "jtop", "nvml", "rapl", "none"}
    interval_ms : int, default 100
        Sampling interval of tegrastats and jtop.

    Returns
    -------
    PowerMeter
        A started meter (use it in a ``with`` block, or call ``stop()``); a :class:`NoPowerMeter`
        whose ``reason`` lists why each source was not used when none works. A named source that
        fails gives a NoPowerMeter too, so a benchmark never stops for want of a sensor.
    """
    check_choice(source, "source", SOURCES)
    if source == "none":
        return NoPowerMeter("power measurement switched off (--power none)")
    tries = {
        "tegrastats": lambda: TegrastatsMeter(interval_ms) if shutil.which("tegrastats") else None,
        "jtop": lambda: _jtop_meter(interval_ms / 1000),
        "nvml": _nvml_meter,
        "rapl": _rapl_meter,
    }
    why = []
    for name in (tries if source == "auto" else [source]):
        try:
            meter = tries[name]()
            if meter is None:
                why.append(f"{name}: not on PATH (not a Jetson)")
                continue
            return meter.start()
        except ImportError as error:
            why.append(f"{name}: {error.name or error} not installed")
        except Exception as error:  # noqa: BLE001 -- any failure of a sensor means "use the next one"
            why.append(f"{name}: {type(error).__name__}: {error}")
    return NoPowerMeter("no power sensor readable here -- " + "; ".join(why))
