"""What running a model costs on this machine: the paper's resource benchmark (§4), and a little more.

:func:`measure` runs one model — a Keras model or a LiteRT file, measured the same way — on batch-1
inputs: ``warmup`` images first (at least one, not timed: graph tracing, allocation, caches), then
``N`` random test images (100 by default, as the paper) timed one by one by :func:`time_calls`, the
project's one batch-1 latency timer. It reports

* latency per image: median, 90th percentile, mean ± sd (ms) — the median resists the noise of a
  shared machine; the p90 shows it;
* throughput (images/s over the timed loop);
* process CPU time and utilisation (CPU seconds / wall seconds: 1.0 = one core busy all the time,
  ``cpu_utilisation / cores`` the fraction of the machine);
* peak resident memory (RSS) of the process, sampled every 2 ms by a background thread
  (:class:`PeakMemorySampler`), and its rise over the start of the measurement;
* optionally the CPU package energy read from Linux RAPL (:class:`cdp_tutorial.edge.RaplMeter`);
* the machine: :func:`cdp_tutorial.devices.device_record` (cores, memory, CPU, GPU, versions, clocks),
  with every result.

The paper's setup (§4, results in §4.3) ran Keras 2.2.4 / TensorFlow 1.15 models on 100 random images
in a VM with 2 CPUs and 4 GB, and reported the *average* latency; here LiteRT files run with
``threads=2`` by default to match, and the median leads because it resists a shared machine's noise
(the mean is recorded too).
A Keras model runs with TensorFlow's own thread pools, which are fixed when TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_int, check_seed


#: Why a warm-up of at least one call is required, in every error that refuses less.
WARMUP_REASON = ("the first call of a model traces its tf.function graph (Keras) or allocates its "
                 "tensors (LiteRT), which no later call repeats, so it must not be timed")


def check_warmup(warmup) -> int:
    """``warmup`` as an ``int`` of at least 1, or a ValueError that says why 0 is not allowed.

    Examples
    --------
    >>> check_warmup(3)
    3
    >>> check_warmup(0)
    Traceback (most recent call last):
        ...
    ValueError: warmup must be an integer ≥ 1, got 0: the first call of a model traces its ...
    """
    try:
        return check_int(warmup, "warmup", minimum=1)
    except ValueError as error:
        raise ValueError(f"{error}: {WARMUP_REASON}") from None


@dataclass(frozen=True)
class LatencyStats:
    """Wall time of each timed call of a batch-1 loop (ms), with its median and spread.

    ``median_ms`` is the figure to compare (it resists the noise of a shared machine);
    ``q25_ms``/``q75_ms`` (and ``iqr_ms``) are the spread to compare it against: two medians that
    differ by less than their IQRs are not shown apart. ``wall_s`` is the whole timed loop.
    """

    latencies_ms: tuple
    warmup: int
    wall_s: float

    @property
    def n(self) -> int:
        """Timed calls."""
        return len(self.latencies_ms)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.latencies_ms))

    @property
    def q25_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 25))

    @property
    def q75_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 75))

    @property
    def iqr_ms(self) -> float:
        """Interquartile range: the spread of the middle half of the calls."""
        return self.q75_ms - self.q25_ms

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 90))

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.latencies_ms))

    @property
    def sd_ms(self) -> float:
        """Sample standard deviation (0 for a single call)."""
        return float(np.std(self.latencies_ms, ddof=1)) if self.n > 1 else 0.0

    def summary(self) -> str:
        """One line: ``median 1.23 ms (IQR 1.10-1.40, n = 50, after 5 warm-up calls)``."""
        return (f"median {self.median_ms:.2f} ms (IQR {self.q25_ms:.2f}-{self.q75_ms:.2f}, "
                f"n = {self.n}, after {self.warmup} warm-up call{'s' * (self.warmup != 1)})")


def time_calls(call, inputs, *, warmup: int, around=None) -> LatencyStats:
    """Time ``call(x)`` once for each ``x`` in ``inputs``, one call at a time, after a warm-up.

    The project's one latency timer: :func:`measure` (Keras models and LiteRT files) and the
    EdgeCompress cascade use it, so their figures are comparable.

    Parameters
    ----------
    call : callable
        Runs one input to completion (return a NumPy value, not a lazy tensor, so the time covers
        the work).
    inputs : sequence
        What each timed call gets, in order (for batch 1: ``images[i:i + 1]``).
    warmup : int
        Untimed calls before the timed ones, on ``inputs[0], inputs[1], ...`` (cycling), at least 1.
    around : context manager, optional
        Entered just before the first timed call and left just after the last, so that what it
        measures (CPU time, memory, energy) covers exactly the timed calls.

    Returns
    -------
    LatencyStats

    Raises
    ------
    ValueError
        If ``warmup`` is below 1 or ``inputs`` is empty.

    Examples
    --------
    >>> stats = time_calls(sorted, [[3, 1, 2]] * 20, warmup=2)
    >>> stats.n, stats.warmup, stats.median_ms >= 0
    (20, 2, True)
    """
    warmup = check_warmup(warmup)
    inputs = list(inputs)
    if not inputs:
        raise ValueError("time_calls needs at least one input to time, got none")
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    seconds = np.empty(len(inputs))
    with (around if around is not None else contextlib.nullcontext()):
        loop_start = time.perf_counter()
        for i, x in enumerate(inputs):
            t0 = time.perf_counter()
            call(x)
            seconds[i] = time.perf_counter() - t0
        wall = time.perf_counter() - loop_start
    return LatencyStats(latencies_ms=tuple((seconds * 1e3).tolist()), warmup=warmup, wall_s=float(wall))


class PeakMemorySampler:
    """Peak resident memory (RSS) of this process while a ``with`` block runs, sampled in a thread.

    Examples
    --------
    >>> with PeakMemorySampler() as memory:
    ...     buffer = bytearray(50 * 2**20)
    >>> memory.peak_bytes >= memory.start_bytes
    True
    """

    def __init__(self, interval_s: float = 0.002):
        import psutil

        self.interval_s = interval_s
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.start_bytes = self.peak_bytes = 0

    def _sample(self):
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self.start_bytes = self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
        return False


@dataclass
class Measurement:
    """One model's measured cost (times in ms, memory in MB = 2**20 bytes). See :func:`measure`."""

    name: str
    runtime: str  # "litert" or "keras"
    threads: int | None
    images: int
    warmup: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    sd_ms: float
    throughput_ips: float
    cpu_time_s: float
    wall_time_s: float
    cpu_utilisation: float
    peak_rss_mb: float
    rss_increase_mb: float
    energy_j_per_image: float | None
    energy_note: str
    device: dict = field(default_factory=dict)
    latencies_ms: list = field(default_factory=list, repr=False)

    def record(self, **extra) -> dict:
        """A flat dict for :class:`cdp_tutorial.edge.EdgeStore` (without the per-image latencies)."""
        out = asdict(self)
        out.pop("latencies_ms")
        out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {**out, **extra}

    def summary(self) -> str:
        """One line: median, p90, mean ± sd, throughput, CPU, memory."""
        return (f"{self.name}: median {self.median_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, "
                f"mean {self.mean_ms:.2f} ± {self.sd_ms:.2f} ms, {self.throughput_ips:.0f} images/s, "
                f"CPU {self.cpu_utilisation:.2f} cores, peak RSS {self.peak_rss_mb:.0f} MiB")


def measure(target, images, *, n_images: int = 100, warmup: int = 10, threads: int = 2, seed: int = 0,
            name: str | None = None, rapl: bool = True) -> Measurement:
    """Batch-1 latency, throughput, CPU and memory of a Keras model or a LiteRT file.

    Parameters
    ----------
    target : keras.Model or str or pathlib.Path
        A Keras model (run with ``model(x, training=False)`` in a compiled ``tf.function``) or
        a ``.tflite`` file (run with ``ai_edge_litert``'s interpreter).
    images : numpy.ndarray
        float32 test images ``(N, H, W, C)``, normalised as in training (see
        :func:`cdp_tutorial.edge.split_arrays`); ``n_images`` are drawn at random (with
        replacement if there are fewer).
    n_images : int, default 100
        Timed images, as in the paper.
    warmup : int, default 10
        Untimed images run first; at least 1 (the first call traces the graph or allocates).
    threads : int, default 2
        LiteRT interpreter threads (the paper's VM had 2 CPUs). Ignored for a Keras model.
    seed : int, default 0
        Which random images.
    name : str, optional
        Name in the record; default: the file's or the model's name.
    rapl : bool, default True
        Read CPU package energy from Linux RAPL where the machine exposes it.

    Returns
    -------
    Measurement

    Raises
    ------
    FileNotFoundError
        A file that does not exist.
    ValueError
        Images of the wrong shape, ``n_images`` or ``threads`` below 1, ``warmup`` below 1.

    Examples
    --------
    >>> m = measure("out/vgg16_fp32.tflite", test_images)                   # doctest: +SKIP
    >>> print(m.summary())                                                   # doctest: +SKIP
    """
    from cdp_tutorial.devices.record import device_record

    n_images = check_int(n_images, "n_images", minimum=1)
    warmup = check_warmup(warmup)
    threads = check_int(threads, "threads", minimum=1)
    images = np.asarray(images, dtype=np.float32)
    run_one, runtime, default_name, input_shape = _runner(target, threads)
    if images.ndim != 4 or tuple(images.shape[1:]) != input_shape or len(images) == 0:
        raise ValueError(f"images must be shaped (N, {', '.join(map(str, input_shape))}), got {images.shape}")
    rng = np.random.default_rng(check_seed(seed))
    chosen = images[rng.choice(len(images), size=n_images, replace=n_images > len(images))]
    window = _ResourceWindow(rapl)
    stats = time_calls(run_one, [chosen[i][None] for i in range(n_images)], warmup=warmup, around=window)
    return Measurement(
        name=name or default_name, runtime=runtime, threads=threads if runtime == "litert" else None,
        images=n_images, warmup=warmup, median_ms=stats.median_ms, p90_ms=stats.p90_ms,
        mean_ms=stats.mean_ms, sd_ms=stats.sd_ms, throughput_ips=float(n_images / window.wall_s),
        cpu_time_s=window.cpu_s, wall_time_s=window.wall_s, cpu_utilisation=window.cpu_s / window.wall_s,
        peak_rss_mb=window.memory.peak_bytes / 2**20,
        rss_increase_mb=(window.memory.peak_bytes - window.memory.start_bytes) / 2**20,
        energy_j_per_image=None if window.joules is None else window.joules / n_images, energy_note=window.note,
        device=device_record(), latencies_ms=[round(t, 4) for t in stats.latencies_ms])


class _ResourceWindow:
    """Process CPU time, wall time, peak memory and RAPL energy of a ``with`` block (the timed calls)."""

    def __init__(self, rapl: bool):
        from cdp_tutorial.edge.energy import RaplMeter

        self.meter = RaplMeter() if rapl else None
        self.note = self.meter.note if self.meter else "not requested (rapl=False)"
        self.memory = PeakMemorySampler()
        self.joules = None

    def __enter__(self):
        self.memory.__enter__()
        # process_time: every thread's CPU time at the clock's resolution (nanoseconds on Linux);
        # psutil's cpu_times counts 10 ms ticks, too coarse for a timed window of a few tens of ms
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        if self.meter:
            self.meter.start()
        return self

    def __exit__(self, *exc):
        self.joules = self.meter.stop() if self.meter else None
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        self.memory.__exit__(*exc)
        return False


def _runner(target, threads):
    """``(run_one(x), runtime, name, input_shape)`` for a Keras model or a LiteRT file."""
    if isinstance(target, (str, Path)):
        from cdp_tutorial.edge.export import load_interpreter

        path = Path(target)
        if path.suffix == ".keras":
            import keras

            if not path.is_file():
                raise FileNotFoundError(f"no Keras model at {path}")
            run_one, runtime, _, input_shape = _runner(keras.saving.load_model(path), threads)
            return run_one, runtime, path.stem, input_shape
        interpreter = load_interpreter(path, threads)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        if inp["dtype"] != np.float32:
            raise ValueError(f"{path} takes {np.dtype(inp['dtype']).name} input; measure files with "
                             "float input (export_litert writes float I/O at every precision)")

        def run_one(x):
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(out["index"])

        return run_one, "litert", path.stem, tuple(int(d) for d in inp["shape"][1:])
    if not hasattr(target, "input_shape") or not callable(target):
        raise TypeError("target must be a keras.Model or a path to a .tflite/.keras file, "
                        f"got {type(target).__name__}")
    import tensorflow as tf

    model = target
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return (lambda x: forward(x).numpy()), "keras", model.name, tuple(model.input_shape[1:])
