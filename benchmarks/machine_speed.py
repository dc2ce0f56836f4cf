"""How fast is this machine? Full-width VGG-16 training throughput, in images per second.

The test budget is set for the slowest machine this project is built on (2 cores where full-width
VGG-16 trains at about 16 images/s); every wall time recorded in the README is quoted next to this
figure, so that a reader can scale it to their own machine.

The measurement: the CIFAR VGG-16 of :mod:`cdp_tutorial.models` (full width, batch-norm, 10 classes),
SGD, batch 64, 32x32x3 random images; ``--warmup`` untimed training steps (tracing), then the median
of ``--repeats`` timings of ``--steps`` steps each. Also printed: the quick profile's training model
(the same VGG-16 at the quick profile's width), whose speed sets how long the notebooks train.

Usage::

    python benchmarks/machine_speed.py             # about 1 minute on the slowest machine
    python benchmarks/machine_speed.py --steps 10 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cdp_tutorial.models import vgg16  # noqa: E402
from cdp_tutorial.profiles import get_profile  # noqa: E402


def images_per_second(width_multiplier: float, *, batch: int, steps: int, warmup: int, repeats: int) -> float:
    """Median training throughput of VGG-16 at ``width_multiplier``, in images per second."""
    keras.utils.set_random_seed(0)
    model = vgg16(width_multiplier=width_multiplier)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        timings.append(time.perf_counter() - start)
    return batch * steps / statistics.median(timings)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    quick = get_profile("quick")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    full = images_per_second(1.0, batch=args.batch, steps=args.steps, warmup=args.warmup, repeats=args.repeats)
    print(f"VGG-16 full width, batch {args.batch}: {full:,.1f} images/s (training)")
    narrow = images_per_second(quick.width_multiplier, batch=args.batch, steps=args.steps * 10,
                               warmup=args.warmup, repeats=args.repeats)
    print(f"VGG-16 x{quick.width_multiplier:g} (quick profile), batch {args.batch}: {narrow:,.1f} images/s "
          f"({narrow / full:.1f}x full width)")


if __name__ == "__main__":
    main()
