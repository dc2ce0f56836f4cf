r"""Energy per inference: the paper's model in both of its readings, and measured RAPL energy.

The paper (§4.3, "Energy consumption") credits its figures to its reference [34], EIE (Han et al.,
"EIE: Efficient inference engine on compressed deep neural network", ACM SIGARCH Computer
Architecture News 44(3), 2016), which uses the 45 nm costs of Horowitz (ISSCC 2014): a 32-bit float
add 0.9 pJ, a float multiply 3.7 pJ, a 32-bit DRAM access 640 pJ. The paper writes

.. math::

    E = \mathrm{FLOPs} \times 2.3\,\mathrm{pJ} \;+\; \mathrm{data\ access} \times 640\,\mathrm{pJ},

with 2.3 pJ for "each 32-bit FLOP" (the mean of that add and multiply; the paper does not say how it
got 2.3) and 640 pJ for "retrieving 1MB from DRAM". Two things are read two ways, and
:func:`energy_model` gives both readings side by side, every count labelled:

* **which count multiplies 2.3 pJ.** The FLOP counts the paper multiplies are, as this package
  reads them, multiply-accumulates (MACs: "313 M FLOPs" for VGG-16 on CIFAR-10 is a MAC count, see
  :mod:`cdp_tutorial.complexity`), so the paper's arithmetic term is **MACs × 2.3 pJ**. Per
  operation, though, a MAC is two FLOPs (a multiply *and* an add, 3.7 + 0.9 = 4.6 pJ in Horowitz's
  table), so Horowitz's reading is **FLOPs × 2.3 pJ = 2 × MACs × 2.3 pJ**: twice the paper's.
* **what "data access" counts.** The paper multiplies 640 pJ by the *model size in MB*: a whole
  megabyte as one access, so memory is almost free (a 58 MB VGG-16 adds 37 nJ to 0.72 mJ of
  arithmetic) and energy follows MACs. In Horowitz's table 640 pJ is *one 32-bit DRAM access*;
  counting every weight read once and every activation written once and read once (nothing cached
  on chip, a pessimistic bound), memory dominates: VGG-16 at 32×32 makes ~16 M accesses, ~10 mJ,
  seven times its arithmetic (1.4 mJ in this reading).

``paper_mj`` is the paper's reading of both (MACs, MB); ``horowitz_mj`` Horowitz's reading of both
(2 × MACs, 32-bit accesses). Neither is a measurement. Where Linux exposes the CPU's RAPL
counters (``/sys/class/powercap/intel-rapl:N/energy_uj``, readable by the user), :class:`RaplMeter`
measures the package energy of a loop; elsewhere (AMD without the driver, VMs, containers, no read
permission) the field is ``None`` and its note says why — never a zero.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_number

PJ_PER_FLOP = 2.3  # the paper (§4.3, after its [34], EIE): "each 32-bit FLOP"
FLOPS_PER_MAC = 2  # a multiply-accumulate is a multiply and an add
PJ_PER_ACCESS = 640.0  # Horowitz 2014 via EIE: one 32-bit DRAM access (the paper: per MB of model)
BYTES_PER_WORD = 4
POWERCAP_ROOT = "/sys/class/powercap"
#: A CPU package domain: ``intel-rapl:0``, ``intel-rapl:1``, ... (not ``intel-rapl:0:0``, its core sub-domain)
PACKAGE_DOMAIN = re.compile(r"intel-rapl:\d+")


def energy_model(model) -> dict:
    """The paper's energy estimate of one inference, in the paper's and in Horowitz's reading (mJ).

    Parameters
    ----------
    model : keras.Model
        Counted at fp32 (4 bytes per number) by :func:`cdp_tutorial.profile`, as the paper does.

    Returns
    -------
    dict
        Counts: ``macs`` (the paper's "FLOPs"), ``flops`` (``flops_per_mac`` × MACs, with
        ``flops_per_mac`` = 2), ``params``, ``activations`` (output elements of every counted
        layer), ``model_mb``, ``horowitz_accesses`` (32-bit DRAM accesses: params + 2 ×
        activations + input elements). The paper's reading: ``paper_compute_mj`` (MACs × 2.3 pJ)
        and ``paper_mj`` (+ model MB × 640 pJ). Horowitz's: ``horowitz_compute_mj`` (FLOPs ×
        2.3 pJ, twice the paper's), ``horowitz_mj`` (+ accesses × 640 pJ) and
        ``horowitz_memory_share``.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> e = energy_model(cdp.models.vgg16())
    >>> e["flops"] == e["flops_per_mac"] * e["macs"]
    True
    >>> round(e["horowitz_compute_mj"] / e["paper_compute_mj"], 6)
    2.0
    >>> e["horowitz_mj"] > e["paper_mj"]
    True
    """
    from cdp_tutorial.complexity import profile

    totals = profile(model, bytes_per_element=BYTES_PER_WORD).totals
    # memory_bytes counts each layer's weights and output activations (Eq. 5); the rest is activations
    activations = totals.memory_bytes // BYTES_PER_WORD - totals.params
    input_elements = int(np.prod(model.input_shape[1:]))
    model_mb = totals.params * BYTES_PER_WORD / 2**20
    flops = FLOPS_PER_MAC * totals.macs
    paper_compute = totals.macs * PJ_PER_FLOP * 1e-9  # pJ -> mJ; the paper's "FLOPs" are MACs
    horowitz_compute = flops * PJ_PER_FLOP * 1e-9  # every multiply and every add, 2.3 pJ each
    accesses = totals.params + 2 * activations + input_elements
    horowitz_memory = accesses * PJ_PER_ACCESS * 1e-9
    return {"macs": int(totals.macs), "flops": int(flops), "flops_per_mac": FLOPS_PER_MAC,
            "params": int(totals.params), "activations": int(activations), "model_mb": model_mb,
            "horowitz_accesses": int(accesses),
            "paper_compute_mj": paper_compute, "paper_mj": paper_compute + model_mb * PJ_PER_ACCESS * 1e-9,
            "horowitz_compute_mj": horowitz_compute, "horowitz_mj": horowitz_compute + horowitz_memory,
            "horowitz_memory_share": horowitz_memory / (horowitz_compute + horowitz_memory)}


def package_domains(root=POWERCAP_ROOT) -> list[Path]:
    """The RAPL *package* domains under ``root``: ``intel-rapl:N`` folders whose ``name`` is ``package-N``.

    Sub-domains (``intel-rapl:N:M``: core, uncore, dram) are inside their package's count, and
    ``psys`` (the whole platform, on some laptops) is not a package: counting either would count
    energy twice.
    """
    found = []
    for folder in sorted(Path(root).glob("intel-rapl:*")):
        if not PACKAGE_DOMAIN.fullmatch(folder.name):
            continue
        try:
            name = (folder / "name").read_text(encoding="ascii").strip()
        except OSError:
            continue
        if name.startswith("package"):
            found.append(folder)
    return found


def rapl_available(root=POWERCAP_ROOT) -> tuple[bool, str]:
    """Whether this machine's RAPL package-energy counters can be read, and why not if not."""
    root = Path(root)
    if not root.is_dir():
        return False, f"no {root}: this OS or VM exposes no RAPL energy counters"
    domains = package_domains(root)
    if not domains:
        return False, (f"no intel-rapl package domain under {root} (AMD CPUs need the "
                       "intel_rapl_common driver; VMs and containers usually hide it)")
    for domain in domains:
        for file in ("energy_uj", "max_energy_range_uj"):
            try:
                int((domain / file).read_text(encoding="ascii"))
            except PermissionError:
                return False, f"{domain / file} is not readable by this user (root only since Linux 5.10)"
            except (OSError, ValueError) as error:
                return False, f"reading {domain / file} failed: {error}"
    return True, f"RAPL package energy from {len(domains)} package domain(s) under {root}"


class RaplMeter:
    """CPU package energy (joules, all sockets) between :meth:`start` and :meth:`stop`, from RAPL.

    Each package domain's counter is read at start, at every :meth:`read_joules`, at stop and, while
    running, every ``poll_s`` seconds by a background thread; each difference between two reads of one
    counter that went down is one wrap of *that* counter (its own ``max_energy_range_uj``). A counter
    that wraps twice between two reads cannot be told from one that wrapped once: that needs more than
    ``range / poll_s`` watts, which :attr:`note` states. ``poll_s=None`` reads at start and stop only.

    ``stop()`` returns ``None`` when RAPL cannot be read here; :attr:`note` says why. It counts the
    whole package — other processes on a shared machine included — so read it as an upper bound.

    Parameters
    ----------
    root : str or pathlib.Path, default "/sys/class/powercap"
        Where the powercap tree is (tests point it at a fake one).
    poll_s : float or None, default 1.0
        How often the background thread reads the counters.

    Examples
    --------
    >>> meter = RaplMeter().start()
    >>> joules = meter.stop()  # None where RAPL cannot be read; meter.note says why
    """

    def __init__(self, root=POWERCAP_ROOT, *, poll_s: float | None = 1.0):
        if poll_s is not None:
            poll_s = check_number(poll_s, "poll_s", minimum=0, include_minimum=False)
        self.root, self.poll_s = Path(root), poll_s
        self.available, self.note = rapl_available(self.root)
        self.domains = package_domains(self.root) if self.available else []
        self.ranges_uj = [int((d / "max_energy_range_uj").read_text()) for d in self.domains]
        if self.available:
            if poll_s is None:
                self.note += "; read at start and stop only: at most one wrap per counter is counted"
            else:
                limit_w = min(self.ranges_uj) * 1e-6 / poll_s
                watts = f"{limit_w:,.0f}" if limit_w >= 10 else f"{limit_w:.3g}"
                self.note += (f"; counters read every {poll_s:g} s: right unless a package draws more than "
                              f"{watts} W (then a counter could wrap twice between reads)")
        self._lock = threading.Lock()
        self._last = self._thread = None
        self._stop = threading.Event()
        self._microjoules = 0

    def _read_counters(self) -> list[int]:
        return [int((d / "energy_uj").read_text(encoding="ascii")) for d in self.domains]

    def _accumulate(self) -> None:
        with self._lock:
            now = self._read_counters()
            for i, (before, after) in enumerate(zip(self._last, now)):
                # a counter that went down wrapped once, at its own range
                self._microjoules += after - before if after >= before else after - before + self.ranges_uj[i]
            self._last = now

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._accumulate()
            except (OSError, ValueError):  # a read that failed now is retried at the next poll or at stop
                pass

    @property
    def running(self) -> bool:
        return self._last is not None and not self._stop.is_set()

    def start(self) -> "RaplMeter":
        """Start counting from zero (idempotent: a running meter keeps counting)."""
        if not self.available or self.running:
            return self
        self._stop.clear()
        self._microjoules, self._last = 0, self._read_counters()
        if self.poll_s is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True, name="rapl-poll")
            self._thread.start()
        return self

    def read_joules(self) -> float | None:
        """Joules since :meth:`start` (the meter keeps running); None if RAPL cannot be read here."""
        if not self.available or self._last is None:
            return None
        if self.running:
            self._accumulate()
        return self._microjoules * 1e-6

    def stop(self) -> float | None:
        """Stop counting; the joules since :meth:`start` (None where RAPL cannot be read)."""
        if not self.available or self._last is None:
            return None
        if self.running:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self._accumulate()
        return self._microjoules * 1e-6
