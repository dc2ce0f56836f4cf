"""Jetson power and utilisation from ``tegrastats``: parse one line, sample in the background.

``tegrastats`` prints one line per interval. What a line holds differs by Jetson generation and
JetPack release; this parser reads every form we have recorded (``tests/data/tegrastats/``):

* Nano (JetPack 4): ``POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406``; input rail ``POM_5V_IN``.
* TX2 and Xavier NX (JetPack 4): ``VDD_IN 6140/5510 VDD_CPU_GPU_CV 2706/2119 ...``; input ``VDD_IN``.
* Xavier NX and Orin (JetPack 5, 6): ``VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW ...``.
* AGX Xavier (``GPU 120/100 CPU 468/450 ...``) and AGX Orin (``VDD_GPU_SOC 3150mW/2971mW
  VDD_CPU_CV ... VIN_SYS_5V0 ...``): no input rail, so the total is a sum of rails.

Each rail prints ``now/average`` (the average since tegrastats started); some releases add a third
figure, which is kept as ``extra_mw``. Where an input rail is printed it already contains every
other rail, so it is never added to them; where none is, the total is the sum of the printed rails,
and :func:`parse_tegrastats` says so in ``input_source``. Without root, tegrastats prints no rails
at all: the line still parses, and ``input_source`` says why there is no power.

:class:`TegrastatsSampler` runs ``tegrastats --interval N`` in the background and integrates the
input power over any measured interval (joules per epoch, millijoules per image).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time

import numpy as np

from cdp_tutorial.checks import check_int

#: Rails that carry the whole module's input power (they contain every other rail).
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")

_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB\b")
_ANY_RAM = re.compile(r"RAM \d+/\d+MB")  # also inside a glued "...406RAM 1923/3964MB": two lines in one
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CPU_OPEN = re.compile(r"\bCPU \[")
_GPU = re.compile(r"\bGR3D(?:_FREQ)? (\d+)%")
# "NAME now/avg", every figure optionally suffixed mW, a third figure on some releases; the
# lookahead (whitespace or end) rejects "RAM 1923/3964MB" and "IRAM 0/252kB".
_RAIL = re.compile(r"(?<!\S)([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
# a token that names a power rail by the conventions above, whatever follows it
_RAIL_NAME = re.compile(r"(?<!\S)((?:VDD|POM|VIN)_[A-Z0-9_]+)(?=\s)")


def parse_tegrastats(line: str) -> dict:
    """Read one ``tegrastats`` line: power by rail, the input power, RAM, CPU and GPU load.

    Parameters
    ----------
    line : str
        One line as tegrastats prints it (an optional leading ``MM-DD-YYYY HH:MM:SS`` is kept).

    Returns
    -------
    dict
        ``rails``: ``{rail: {"now_mw", "average_mw", "extra_mw"}}`` (``extra_mw`` None unless
        printed); ``input_mw``: the module's power now, in mW (None without rails);
        ``input_average_mw``; ``input_source``: which rail, or which rails were summed, or why
        there is none; ``ram_used_mb``, ``ram_total_mb``; ``cpu_percent``: one entry per core
        (None for a core that is off); ``cpu_mean_percent`` over the cores that are on;
        ``gpu_percent`` (None if not printed); ``timestamp`` (str or None).

    Raises
    ------
    ValueError
        If the text is not one tegrastats line: no ``RAM used/totalMB``, two lines in one string, a
        rail printed twice or without readable figures, a cut-off ``CPU [`` block, or an impossible
        value (RAM used above its total, a core or the GPU above 100 %). The message says what was
        wrong and quotes the line.

    Examples
    --------
    >>> s = parse_tegrastats("RAM 1923/3964MB CPU [5%@1224,off] GR3D_FREQ 0%@76 "
    ...                      "POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406")
    >>> s["input_mw"], s["input_source"], s["cpu_percent"]
    (1750.0, 'POM_5V_IN (input rail)', [5.0, None])
    """
    if not isinstance(line, str):
        raise TypeError(f"parse_tegrastats expects one line of text, got {type(line).__name__}")
    text = line.strip()
    if "\n" in text or "\r" in text or len(_ANY_RAM.findall(text)) > 1:
        raise ValueError(f"tegrastats output holds {max(len(text.splitlines()), len(_ANY_RAM.findall(text)))} "
                         f"lines, not one (two 'RAM used/totalMB' fields or a line break): parse each line "
                         f"on its own: {line!r}")
    stamp = _TIMESTAMP.match(text)
    ram = _RAM.search(text)
    if ram is None:
        raise ValueError(f"not a tegrastats line (no 'RAM used/totalMB' field): {line!r}")
    ram_used, ram_total = int(ram.group(1)), int(ram.group(2))
    if ram_total == 0 or ram_used > ram_total:
        raise ValueError(f"tegrastats RAM {ram_used}/{ram_total}MB is impossible (used must be at most "
                         f"the total, and the total above 0): {line!r}")

    rails = {}
    for name, now, average, extra in _RAIL.findall(text):
        if name in rails:
            raise ValueError(f"tegrastats rail {name} appears twice in one line (each rail is printed "
                             f"once): {line!r}")
        rails[name] = {"now_mw": float(now), "average_mw": float(average),
                       "extra_mw": float(extra) if extra else None}
    unreadable = [n for n in _RAIL_NAME.findall(text) if n not in rails]
    if unreadable:
        raise ValueError(f"tegrastats rail(s) {unreadable} have no readable 'now/average' figures "
                         f"(expected e.g. 'VDD_IN 5316/5290' or 'VDD_IN 5316mW/5290mW'): {line!r}")

    input_mw, input_average_mw, source = _input_power(rails)
    cores = _cpu_loads(text, line)
    on = [c for c in cores if c is not None]
    gpu = _GPU.search(text)
    if gpu and int(gpu.group(1)) > 100:
        raise ValueError(f"tegrastats GPU load {gpu.group(1)}% is above 100%: {line!r}")
    return {
        "timestamp": stamp.group(1) if stamp else None,
        "rails": rails,
        "input_mw": input_mw,
        "input_average_mw": input_average_mw,
        "input_source": source,
        "ram_used_mb": ram_used,
        "ram_total_mb": ram_total,
        "cpu_percent": cores,
        "cpu_mean_percent": float(np.mean(on)) if on else None,
        "gpu_percent": float(gpu.group(1)) if gpu else None,
    }


def _input_power(rails: dict):
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name]["now_mw"], rails[name]["average_mw"], f"{name} (input rail)"
    if not rails:
        return None, None, ("no power rails in this line (tegrastats prints them only when run as "
                            "root, and not on every board)")
    names = sorted(rails)
    return (sum(r["now_mw"] for r in rails.values()), sum(r["average_mw"] for r in rails.values()),
            "sum of rails " + "+".join(names) + " (no input rail printed: excludes what no rail measures)")


def _cpu_loads(text, line) -> list:
    match = _CPU.search(text)
    if match is None:
        if _CPU_OPEN.search(text):
            raise ValueError(f"tegrastats CPU block is cut off (no closing ']'): {line!r}")
        return []
    if not match.group(1).strip():
        raise ValueError(f"tegrastats CPU block lists no core ('CPU []'; expected e.g. 'CPU [5%@1224,off]'): {line!r}")
    cores = []
    for entry in match.group(1).split(","):
        entry = entry.strip()
        if entry == "off":
            cores.append(None)
            continue
        load = re.match(r"(\d+)%", entry)
        if load is None:
            raise ValueError(f"tegrastats CPU entry {entry!r} is neither 'N%@MHz' nor 'off': {line!r}")
        if int(load.group(1)) > 100:
            raise ValueError(f"tegrastats CPU entry {entry!r}: a core's load is at most 100%: {line!r}")
        cores.append(float(load.group(1)))
    return cores


def integrate_power(times_s, power_mw, start: float, end: float) -> float:
    """Energy in joules over ``[start, end]`` from power samples, by the trapezoid rule.

    Power between two samples is interpolated linearly; the samples must cover the interval
    (one at or before ``start``, one at or after ``end``), otherwise the energy is not known.

    Parameters
    ----------
    times_s : sequence of float
        Sample times in seconds, in increasing order.
    power_mw : sequence of float
        Power at each time, in milliwatts (finite: a missing sample is left out, not NaN).
    start, end : float
        The interval, in the same clock as ``times_s``.

    Raises
    ------
    ValueError
        If ``end <= start``, the two sequences differ in length, a value is NaN or infinite, the
        times do not increase, or the samples do not cover the interval.

    Examples
    --------
    >>> integrate_power([0, 1, 2], [1000, 3000, 1000], 0, 2)  # 2 W on average for 2 s
    4.0
    """
    t = np.asarray(times_s, dtype=float)
    p = np.asarray(power_mw, dtype=float)
    if end <= start:
        raise ValueError(f"the interval must have end > start, got [{start}, {end}]")
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"times_s and power_mw must be two flat sequences of one length, got "
                         f"shapes {t.shape} and {p.shape}")
    for values, name in ((t, "times_s"), (p, "power_mw")):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] is {values[bad[0]]}: every sample must be a finite number "
                             f"(leave a missing sample out instead); {bad.size} such value(s)")
    backwards = np.flatnonzero(np.diff(t) <= 0)
    if backwards.size:
        i = backwards[0]
        raise ValueError(f"times_s must increase: sample {i + 1} (t = {t[i + 1]}) does not come after "
                         f"sample {i} (t = {t[i]}); sort the samples by time and drop repeated times")
    if t.size < 2 or t[0] > start or t[-1] < end:
        raise ValueError(f"power samples cover [{t[0] if t.size else None}, {t[-1] if t.size else None}] s, "
                         f"not the measured interval [{start:.3f}, {end:.3f}] s: sample more often "
                         "or measure a longer interval")
    inside = (t > start) & (t < end)
    grid = np.concatenate([[start], t[inside], [end]])
    watts = np.interp(grid, t, p) / 1000.0
    return float(np.sum((watts[1:] + watts[:-1]) / 2 * np.diff(grid)))


class TegrastatsSampler:
    """Run ``tegrastats --interval N`` in the background and keep every parsed line with its time.

    Use it as a context manager; times are :func:`time.monotonic` seconds, so an interval measured
    with ``time.monotonic()`` can be passed to :meth:`energy_j`.

    Parameters
    ----------
    interval_ms : int, default 100
        Sampling interval passed to tegrastats (it accepts milliseconds).
    command : str, default "tegrastats"
        The executable (found on ``PATH``); tests put a stand-in there.

    Raises
    ------
    FileNotFoundError
        On :meth:`start`, if the executable is not on ``PATH`` (this is not a Jetson).

    Examples
    --------
    >>> with TegrastatsSampler(interval_ms=100) as sampler:  # doctest: +SKIP
    ...     start = time.monotonic(); train_one_epoch(); end = time.monotonic()
    ...     joules = sampler.energy_j(start, end)
    """

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats"):
        self.interval_ms = check_int(interval_ms, "interval_ms", minimum=1)
        self.command = command
        self.samples: list[tuple[float, dict]] = []
        self.errors: list[str] = []  # lines that did not parse: kept and reported, never zeros
        self._process = None
        self._reader = None
        self._lock = threading.Lock()

    def start(self) -> "TegrastatsSampler":
        if self._process is not None and self._process.poll() is None:
            return self  # already sampling (a started meter entered in a with block): never a second process
        path = shutil.which(self.command)
        if path is None:
            raise FileNotFoundError(f"{self.command!r} is not on PATH: tegrastats exists only on NVIDIA "
                                    "Jetson boards (JetPack)")
        self._process = subprocess.Popen([path, "--interval", str(self.interval_ms)],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                         bufsize=1)
        self._reader = threading.Thread(target=self._read, name="tegrastats-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            if not line.strip():
                continue
            now = time.monotonic()
            try:
                sample = parse_tegrastats(line)
            except ValueError as error:
                with self._lock:
                    self.errors.append(str(error))
                continue
            with self._lock:
                self.samples.append((now, sample))

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def wait_for_samples(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``count`` lines were read (or ``timeout_s``); True if they were."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.samples) >= count:
                    return True
            time.sleep(self.interval_ms / 4000)
        return False

    def energy_j(self, start: float, end: float) -> tuple[float, str]:
        """Energy of the input power over ``[start, end]`` (monotonic seconds) and its source.

        Raises
        ------
        ValueError
            If the lines carry no power, or do not cover the interval.
        """
        with self._lock:
            samples = list(self.samples)
        powered = [(t, s) for t, s in samples if s["input_mw"] is not None]
        if not powered:
            reason = samples[-1][1]["input_source"] if samples else "tegrastats printed no line yet"
            raise ValueError(f"no power from tegrastats: {reason}")
        times = [t for t, _ in powered]
        power = [s["input_mw"] for _, s in powered]
        return integrate_power(times, power, start, end), f"tegrastats {powered[-1][1]['input_source']}"
