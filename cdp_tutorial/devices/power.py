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

Every meter keeps one contract (:class:`PowerMeter`): :func:`open_power_meter` returns it
unstarted; ``with meter:`` starts it and always stops it, releasing its process, thread or
connection; ``start`` and ``stop`` are idempotent. Inside, ``mark = meter.read()`` before and after
the work, then ``meter.measure(before, after)`` gives an :class:`Energy` with joules, mean watts and
the source. ``"auto"`` takes the first source that gives power: one that starts but has no power
figure (a tegrastats without rails) is passed over too. When no source works, the meter is a
:class:`NoPowerMeter` whose ``reason`` says why for each source tried, and every figure is ``None``
with that reason -- never a zero.
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
    """Base class of every power source: one start/stop contract.

    A meter comes unstarted from :func:`open_power_meter`; ``with meter:`` (or :meth:`start`) opens
    its sensor, and leaving the block (or :meth:`stop`) releases it -- processes, threads and
    connections -- also when the block raised. Both are idempotent: starting a started meter or
    stopping a stopped one does nothing, and a stopped meter can be started again. Inside, ``read()``
    a mark before and after the work; ``measure(before, after)`` gives the :class:`Energy` between.

    Subclasses implement ``_open()`` (acquire; on failure release what was acquired and raise),
    ``_close()`` (release), ``read()`` and ``measure()``, and may override :meth:`no_power_reason`.
    """

    source = "none"

    def __init__(self):
        self.started = False
        #: Sources :func:`open_power_meter` tried before this one, each with why it was not used.
        self.passed_over: list[str] = []

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def start(self):
        if not self.started:
            self._open()
            self.started = True
        return self

    def stop(self) -> None:
        if self.started:
            self.started = False
            self._close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def no_power_reason(self) -> str | None:
        """Why this started meter gives no power figure (None when it does)."""
        return None

    def read(self):
        return time.monotonic()

    def measure(self, before, after) -> Energy:
        raise NotImplementedError


class NoPowerMeter(PowerMeter):
    """No sensor: every measurement says why instead of reporting zero."""

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason

    def measure(self, before, after) -> Energy:
        return Energy(None, None, None, self.reason)


class TegrastatsMeter(PowerMeter):
    """The Jetson input rail from ``tegrastats --interval N`` (see :mod:`cdp_tutorial.devices.tegrastats`)."""

    source = "tegrastats"

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats"):
        super().__init__()
        self.sampler = TegrastatsSampler(interval_ms=interval_ms, command=command)

    def _open(self) -> None:
        self.sampler.start()
        if not self.sampler.wait_for_samples(1, timeout_s=max(5.0, self.sampler.interval_ms / 100)):
            self.sampler.stop()
            raise RuntimeError(f"tegrastats printed nothing within a few intervals; errors: {self.sampler.errors[:2]}")

    def _close(self) -> None:
        self.sampler.stop()

    def no_power_reason(self) -> str | None:
        last = self.sampler.samples[-1][1]
        return None if last["input_mw"] is not None else last["input_source"]

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
    """Polls a power reading (watts) in a background thread and integrates it (jtop).

    Parameters
    ----------
    connect : callable
        Opens the sensor; returns ``(read_watts, close)``: a function giving the power now, in W,
        and one releasing the sensor. Called at every :meth:`start`.
    source : str
        What the figures are, for the record.
    interval_s : float
        Polling interval.
    """

    def __init__(self, connect, source: str, interval_s: float = 0.1):
        super().__init__()
        self._connect, self.source, self.interval_s = connect, source, interval_s
        self.times, self.milliwatts, self.errors = [], [], []
        self._thread, self._release = None, None
        self._stop = threading.Event()

    def _open(self) -> None:
        read_watts, self._release = self._connect()
        try:
            first = 1000.0 * float(read_watts())  # a sensor that cannot be read fails here, not in the thread
        except BaseException:
            self._close()
            raise
        self._read_watts = read_watts
        self.times, self.milliwatts, self.errors = [time.monotonic()], [first], []
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True, name=f"{self.source}-poll")
        self._thread.start()

    def _poll(self):
        while not self._stop.wait(self.interval_s):
            try:
                watts = float(self._read_watts())
            except Exception as error:  # noqa: BLE001 -- kept and reported; the interval then has no figure
                self.errors.append(f"{type(error).__name__}: {error}")
                return
            self.times.append(time.monotonic())
            self.milliwatts.append(1000.0 * watts)

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        release, self._release = self._release, None
        if release is not None:
            release()

    def no_power_reason(self) -> str | None:
        return None if self.milliwatts and self.milliwatts[0] > 0 else f"{self.source} reads 0 W"

    def measure(self, before, after) -> Energy:
        time.sleep(min(2 * self.interval_s, 1.0))  # let one sample land after the interval
        try:
            joules = integrate_power(list(self.times), list(self.milliwatts), before, after)
        except ValueError as error:
            why = f"{error}; polling stopped: {self.errors[0]}" if self.errors else str(error)
            return Energy(None, None, self.source, why)
        return Energy(joules, joules / (after - before), self.source)


class CounterMeter(PowerMeter):
    """An energy counter in joules (NVML, RAPL): a mark is ``(time, joules)``.

    ``connect()`` opens the counter and returns ``(read_joules, close)``; called at every :meth:`start`.
    """

    def __init__(self, connect, source: str):
        super().__init__()
        self._connect, self.source = connect, source
        self._joules = self._release = None

    def _open(self) -> None:
        self._joules, self._release = self._connect()

    def _close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def read(self):
        if not self.started:
            raise RuntimeError(f"start the {self.source} meter before reading it (use it in a with block)")
        return time.monotonic(), self._joules()

    def measure(self, before, after) -> Energy:
        (t0, e0), (t1, e1) = before, after
        joules = e1 - e0
        return Energy(joules, joules / (t1 - t0) if t1 > t0 else None, self.source)


def _jtop_meter(interval_s):
    from jtop import jtop  # jetson-stats

    def connect():
        jetson = jtop()
        jetson.start()
        return (lambda: jetson.power["tot"]["power"] / 1000.0), jetson.close  # jtop reports mW

    return PollingMeter(connect, "jtop power['tot'] (board total)", interval_s)


def _nvml_meter():
    import pynvml

    def connect():
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises NotSupported on Tegra and old GPUs
        except BaseException:
            pynvml.nvmlShutdown()
            raise
        # a 64-bit count of mJ since the driver loaded: it does not wrap in practice
        return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0), pynvml.nvmlShutdown

    return CounterMeter(connect, "NVML total energy counter of GPU 0: the GPU board only")


def _rapl_meter():
    from cdp_tutorial.edge.energy import RaplMeter

    def connect():
        rapl = RaplMeter()  # the project's one RAPL reader: package domains, each wrap at its own range
        if not rapl.available:
            raise FileNotFoundError(rapl.note)
        rapl.start()
        return rapl.read_joules, rapl.stop

    return CounterMeter(connect, "RAPL CPU package energy (not the whole machine; other processes included)")


def probe(meter: PowerMeter) -> str | None:
    """Start ``meter``, see whether it gives power, stop it: None if it does, else why not.

    Whatever the sensor does, the meter is stopped again (no process, thread or connection is left).
    """
    try:
        with meter:
            return meter.no_power_reason()
    except ImportError as error:
        return f"{error.name or error} not installed"
    except Exception as error:  # noqa: BLE001 -- any failure of a sensor means "use the next one"
        return f"{type(error).__name__}: {error}"


def open_power_meter(source: str = "auto", *, interval_ms: int = 100) -> PowerMeter:
    """The first power source that gives power here (or the one named), unstarted.

    Each candidate is tried -- started, checked for a power figure, stopped -- and ``"auto"`` falls
    through to the next source when one cannot start *or* gives no power (a tegrastats without power
    rails, as on a Jetson where it does not run as root).

    Parameters
    ----------
    source : {"auto", "tegrastats", "jtop", "nvml", "rapl", "none"}
    interval_ms : int, default 100
        Sampling interval of tegrastats and jtop.

    Returns
    -------
    PowerMeter
        An unstarted meter: use it in a ``with`` block (or ``start()`` / ``stop()``). Its
        ``passed_over`` lists the sources tried before it and why each was not used. When none
        works, a :class:`NoPowerMeter` whose ``reason`` says why for each source; a named source
        that fails gives a NoPowerMeter too, so a benchmark never stops for want of a sensor.

    Examples
    --------
    >>> with open_power_meter("none") as meter:
    ...     energy = meter.measure(meter.read(), meter.read())
    >>> energy.joules is None, energy.why_not
    (True, 'power measurement switched off (--power none)')
    """
    check_choice(source, "source", SOURCES)
    if source == "none":
        return NoPowerMeter("power measurement switched off (--power none)")
    makers = {
        "tegrastats": lambda: TegrastatsMeter(interval_ms) if shutil.which("tegrastats") else None,
        "jtop": lambda: _jtop_meter(interval_ms / 1000),
        "nvml": _nvml_meter,
        "rapl": _rapl_meter,
    }
    why = []
    for name in (makers if source == "auto" else [source]):
        try:
            meter = makers[name]()
        except ImportError as error:
            why.append(f"{name}: {error.name or error} not installed")
            continue
        if meter is None:
            why.append(f"{name}: not on PATH (not a Jetson)")
            continue
        reason = probe(meter)
        if reason is None:
            meter.passed_over = why
            return meter
        why.append(f"{name}: {reason}")
    return NoPowerMeter("no power sensor gives power here -- " + "; ".join(why))
