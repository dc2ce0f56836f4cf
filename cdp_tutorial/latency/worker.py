"""Time LiteRT files in a process of their own: ``python -I worker.py JOB.json RESULT.json``.

This file is run as a script, never imported by the package, and imports only the standard
library, NumPy and ``ai_edge_litert``: a process that has imported TensorFlow keeps its thread
pools and memory, which the timed calls would share (an unrecorded early probe on a shared machine
saw timings there up to 2x off).
(:func:`cdp_tutorial.edge.time_calls`, the package's timer, cannot be used here for that reason:
importing anything from ``cdp_tutorial`` loads TensorFlow. The loop below is the same: warm-up,
then one call at a time between two ``perf_counter`` reads.)

The job (JSON): ``files``, ``threads``, ``warmup``, ``rounds``, ``repeats``, ``seed``, ``clock``.
Every round visits every file once, in a fresh random order (so that load from other processes hits
all files alike): load the interpreter, ``warmup`` untimed calls, ``repeats`` timed calls, keep their
median. Each call is timed by two clocks: the wall clock (``perf_counter``) and this thread's CPU
time (``thread_time``: with one interpreter thread, the time the model ran, not the time it waited
for a core that other processes held). ``clock`` says which one ``ms`` holds; ``wall_ms`` is kept too.
The result (JSON): ``{"ms": {file: [one median per round]}, "wall_ms": {...}, "litert": version,
"load": [...]}``.
"""

import json
import os
import sys
import time
from importlib.metadata import version

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def round_median_ms(path, threads, warmup, repeats, rng):
    """Median wall time and thread CPU time (ms) of ``repeats`` batch-1 calls, after ``warmup`` calls."""
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(np.float32))
    for _ in range(warmup):
        interpreter.invoke()
    wall, cpu = np.empty(repeats), np.empty(repeats)
    for i in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        interpreter.invoke()
        cpu[i] = time.thread_time() - start_cpu
        wall[i] = time.perf_counter() - start
    return float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3)


def main(job_path, result_path):
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    rng = np.random.default_rng(job["seed"])
    files = list(job["files"])
    wall, cpu = {path: [] for path in files}, {path: [] for path in files}
    load = [os.getloadavg()[0]]
    for _ in range(job["rounds"]):
        for i in rng.permutation(len(files)):
            w, c = round_median_ms(files[i], job["threads"], job["warmup"], job["repeats"], rng)
            wall[files[i]].append(w)
            cpu[files[i]].append(c)
        load.append(os.getloadavg()[0])
    result = {"ms": cpu if job["clock"] == "thread" else wall, "wall_ms": wall,
              "litert": version("ai-edge-litert"), "load": load,
              "tensorflow_imported": "tensorflow" in sys.modules}
    with open(result_path + ".part", "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(result_path + ".part", result_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
