"""What running a model costs on this machine: the paper's §4.3 protocol, and a little more.

:func:`measure` runs one model — a Keras model or a LiteRT file, measured the same way — on batch-1
inputs: ``warmup`` images first (not timed: graph tracing, allocation, caches), then ``N`` random
test images (100 by default, as the paper) timed one by one. It reports

* latency per image: median, 90th percentile, mean ± sd (ms) — the median resists the noise of a
  shared machine; the p90 shows it;
* throughput (images/s over the timed loop);
* process CPU time and utilisation (CPU seconds / wall seconds: 1.0 = one core busy all the time,
  ``cpu_utilisation / cores`` the fraction of the machine);
* peak resident memory (RSS) of the process, sampled every 2 ms by a background thread
  (:class:`PeakMemorySampler`), and its rise over the start of the measurement;
* optionally the CPU package energy read from Linux RAPL (:class:`cdp_tutorial.edge.RaplMeter`);
* the machine: :func:`device_record` (cores, memory, CPU, versions), with every result.

The paper's VM had 2 CPUs and 4 GB; LiteRT files run with ``threads=2`` by default to match.
A Keras model runs with TensorFlow's own thread pools, which are fixed when TensorFlow starts.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_int, check_seed


def device_record() -> dict:
    """The machine a measurement ran on: cores, memory, CPU model, OS and library versions."""
    import psutil

    # a stable, anonymous machine id: the same on every run (Python's hash() is salted per process)
    machine_id = hashlib.sha256(platform.node().encode("utf-8")).hexdigest()[:8]
    record = {"hostname_hash": machine_id, "platform": platform.platform(),
              "machine": platform.machine(), "cpu_model": _cpu_model(),
              "logical_cores": psutil.cpu_count(logical=True),
              "physical_cores": psutil.cpu_count(logical=False),
              "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
              "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 2),
              "python": platform.python_version()}
    for module in ("tensorflow", "keras", "ai_edge_litert"):
        try:
            from importlib.metadata import version

            record[module] = version(module.replace("_", "-"))
        except Exception:  # a missing distribution is recorded, not fatal
            record[module] = None
    return record


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
                f"CPU {self.cpu_utilisation:.2f} cores, peak RSS {self.peak_rss_mb:.0f} MB")


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
        Untimed images run first.
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
        Images of the wrong shape, ``n_images`` or ``threads`` below 1.

    Examples
    --------
    >>> m = measure("out/vgg16_fp32.tflite", test_images)                   # doctest: +SKIP
    >>> print(m.summary())                                                   # doctest: +SKIP
    """
    from cdp_tutorial.edge.energy import RaplMeter

    n_images = check_int(n_images, "n_images", minimum=1)
    warmup = check_int(warmup, "warmup", minimum=0)
    threads = check_int(threads, "threads", minimum=1)
    images = np.asarray(images, dtype=np.float32)
    run_one, runtime, default_name, input_shape = _runner(target, threads)
    if images.ndim != 4 or tuple(images.shape[1:]) != input_shape or len(images) == 0:
        raise ValueError(f"images must be shaped (N, {', '.join(map(str, input_shape))}), got {images.shape}")
    rng = np.random.default_rng(check_seed(seed))
    chosen = images[rng.choice(len(images), size=n_images, replace=n_images > len(images))]
    for i in range(warmup):
        run_one(chosen[i % n_images][None])

    import psutil

    process = psutil.Process()
    latencies = np.empty(n_images)
    meter = RaplMeter() if rapl else None
    with PeakMemorySampler() as memory:
        cpu_start, wall_start = process.cpu_times(), time.perf_counter()
        if meter:
            meter.start()
        for i in range(n_images):
            x = chosen[i][None]
            t0 = time.perf_counter()
            run_one(x)
            latencies[i] = time.perf_counter() - t0
        joules = meter.stop() if meter else None
        wall = time.perf_counter() - wall_start
        cpu_end = process.cpu_times()
    cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    note = (meter.note if meter else "not requested (rapl=False)")
    ms = latencies * 1e3
    return Measurement(
        name=name or default_name, runtime=runtime, threads=threads if runtime == "litert" else None,
        images=n_images, warmup=warmup, median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)),
        mean_ms=float(ms.mean()), sd_ms=float(ms.std(ddof=1)) if n_images > 1 else 0.0,
        throughput_ips=float(n_images / wall), cpu_time_s=float(cpu), wall_time_s=float(wall),
        cpu_utilisation=float(cpu / wall), peak_rss_mb=memory.peak_bytes / 2**20,
        rss_increase_mb=(memory.peak_bytes - memory.start_bytes) / 2**20,
        energy_j_per_image=None if joules is None else joules / n_images, energy_note=note,
        device=device_record(), latencies_ms=ms.round(4).tolist())


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


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
