r"""Energy per inference: the paper's model in both of its readings, and measured RAPL energy.

The paper (§4.3, after Horowitz, ISSCC 2014) estimates the energy of one inference as

.. math::

    E = \mathrm{FLOPs} \times 2.3\,\mathrm{pJ} \;+\; \mathrm{data\ access} \times 640\,\mathrm{pJ}.

"Data access" is read two ways, and :func:`energy_model` gives both side by side:

* **paper convention** — the paper multiplies 640 pJ by the *model size in MB*. This treats a whole
  megabyte as one access, so memory is almost free (a 60 MB VGG-16 adds 38 nJ to ~1.4 mJ of
  arithmetic) and energy simply follows FLOPs.
* **Horowitz convention** — 640 pJ is Horowitz's cost of *one 32-bit DRAM access*. Counting every
  weight read once and every activation written once and read once (nothing cached on chip, a
  pessimistic bound), memory dominates: VGG-16 at 32×32 makes ~16 M accesses, ~10 mJ, seven times its
  arithmetic.

Neither is a measurement. Where Linux exposes the CPU's RAPL counters
(``/sys/class/powercap/intel-rapl:*/energy_uj``, readable by the user), :class:`RaplMeter`
measures the package energy of a loop; elsewhere (AMD without the driver, VMs, containers, no read
permission) the field is ``None`` and its note says why — never a zero.
"""

from __future__ import annotations

import glob
import os

import numpy as np

PJ_PER_FLOP = 2.3  # Horowitz 2014, as used by the paper: one 32-bit float operation
PJ_PER_ACCESS = 640.0  # Horowitz 2014: one 32-bit DRAM access
BYTES_PER_WORD = 4
RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*/energy_uj"


def energy_model(model) -> dict:
    """The paper's energy estimate of one inference, in both conventions (in millijoules).

    Parameters
    ----------
    model : keras.Model
        Counted at fp32 (4 bytes per number) by :func:`cdp_tutorial.profile`, as the paper does.

    Returns
    -------
    dict
        ``flops``, ``params``, ``activations`` (output elements of every counted layer),
        ``model_mb``, ``compute_mj`` (FLOPs × 2.3 pJ), ``paper_mj`` (+ model MB × 640 pJ),
        ``horowitz_accesses`` (params + 2 × activations + input elements), ``horowitz_mj``
        (+ accesses × 640 pJ) and ``horowitz_memory_share``.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> e = energy_model(cdp.models.vgg16())
    >>> e["horowitz_mj"] > e["paper_mj"]
    True
    """
    from cdp_tutorial.complexity import profile

    totals = profile(model, bytes_per_element=BYTES_PER_WORD).totals
    # memory_bytes counts each layer's weights and output activations (Eq. 7); the rest is activations
    activations = totals.memory_bytes // BYTES_PER_WORD - totals.params
    input_elements = int(np.prod(model.input_shape[1:]))
    model_mb = totals.params * BYTES_PER_WORD / 2**20
    compute = totals.flops * PJ_PER_FLOP * 1e-9  # pJ -> mJ
    accesses = totals.params + 2 * activations + input_elements
    horowitz_memory = accesses * PJ_PER_ACCESS * 1e-9
    return {"flops": int(totals.flops), "params": int(totals.params), "activations": int(activations),
            "model_mb": model_mb, "compute_mj": compute,
            "paper_mj": compute + model_mb * PJ_PER_ACCESS * 1e-9,
            "horowitz_accesses": int(accesses), "horowitz_mj": compute + horowitz_memory,
            "horowitz_memory_share": horowitz_memory / (compute + horowitz_memory)}


def rapl_available() -> tuple[bool, str]:
    """Whether this machine's RAPL package-energy counters can be read, and why not if not."""
    files = sorted(glob.glob(RAPL_GLOB))
    if not os.path.isdir("/sys/class/powercap"):
        return False, "no /sys/class/powercap: this OS or VM exposes no RAPL energy counters"
    if not files:
        return False, ("no intel-rapl domain under /sys/class/powercap (AMD CPUs need the "
                       "intel_rapl_common driver; VMs and containers usually hide it)")
    try:
        for path in files:
            with open(path, encoding="ascii") as f:
                int(f.read())
    except PermissionError:
        return False, f"{files[0]} is not readable by this user (root only since Linux 5.10)"
    except (OSError, ValueError) as error:
        return False, f"reading {files[0]} failed: {error}"
    return True, f"RAPL package energy from {len(files)} domain(s) under /sys/class/powercap"


class RaplMeter:
    """CPU package energy (joules, all sockets) between :meth:`start` and :meth:`stop`, from RAPL.

    ``stop()`` returns ``None`` when RAPL cannot be read here; :attr:`note` says why. It counts the
    whole package — other processes on a shared machine included — so read it as an upper bound.
    """

    def __init__(self):
        self.available, self.note = rapl_available()
        self._start = None

    def _read(self):
        total, ranges = 0, []
        for path in sorted(glob.glob(RAPL_GLOB)):
            with open(path, encoding="ascii") as f:
                total += int(f.read())
            limit = os.path.join(os.path.dirname(path), "max_energy_range_uj")
            with open(limit, encoding="ascii") as f:
                ranges.append(int(f.read()))
        return total, sum(ranges)

    def start(self) -> None:
        if self.available:
            self._start = self._read()

    def stop(self) -> float | None:
        if not self.available or self._start is None:
            return None
        (begin, wrap), (end, _) = self._start, self._read()
        delta = end - begin if end >= begin else end - begin + wrap  # the counter wrapped around
        return delta * 1e-6
