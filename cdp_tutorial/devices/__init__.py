"""Device benchmarks: the paper's Table 6 on any device, Jetson included (§4.4.2).

==============  ====================================================================================
module          what it owns
==============  ====================================================================================
``record``      :func:`device_record`: CPU, memory, GPU, OS, versions; Jetson L4T, nvpmodel, clocks
``tegrastats``  :func:`parse_tegrastats` (one line: rails in mW, RAM, CPU, GPU) and the background
                :class:`TegrastatsSampler`
``power``       :func:`open_power_meter`: tegrastats, jtop, NVML or RAPL energy, each naming its
                source, or why there is none; returned unstarted, started and always stopped by
                ``with``
``bench``       :func:`run_device_benchmark`: 1 epoch at batch 5, baseline and each mode pruned up to
                50 iterations, plus batch-1 latency; :func:`table6_protocol_label`
``store``       results files (JSON lines): :func:`append_record`, :func:`load_results`, :func:`table6`
==============  ====================================================================================

From a terminal: ``cdp-tutorial bench-device --quick`` (several minutes: about 8 on the committed shared 2-core
AMD EPYC VM; not the paper's protocol).
"""

from cdp_tutorial.devices.bench import iteration_limited_plan, run_device_benchmark, table6_protocol_label
from cdp_tutorial.devices.power import Energy, open_power_meter
from cdp_tutorial.devices.record import device_record
from cdp_tutorial.devices.store import append_record, load_results, table6
from cdp_tutorial.devices.tegrastats import TegrastatsSampler, integrate_power, parse_tegrastats

__all__ = ["Energy", "TegrastatsSampler", "append_record", "device_record", "integrate_power",
           "iteration_limited_plan", "load_results", "open_power_meter", "parse_tegrastats",
           "run_device_benchmark", "table6", "table6_protocol_label"]
