"""Edge deployment: a Keras model as a LiteRT flatbuffer, and what it costs to run (paper §4.3).

=================  ===========================================================================
``export``         Keras -> LiteRT in fp32 / fp16 / dynamic-range int8 / full-integer int8, with
                   the exported variant's accuracy and max |Δ output| against the Keras model
``measure``        batch-1 latency (median, p90, mean ± sd), throughput, process CPU time and
                   utilisation, peak resident memory, the machine it ran on
                   (:func:`cdp_tutorial.devices.device_record`); :func:`time_calls`, the one
                   batch-1 latency timer (median and IQR), for anything callable
``interleave``     :func:`time_back_to_back`: several models timed image by image, back to back,
                   in rounds, so that comparisons carry their spread on a busy machine;
                   :func:`ratio_interval` / :func:`paired_interval`: 95 % t-intervals over the rounds
``energy``         the paper's energy model in both conventions, and measured RAPL energy
``store``          ``edge.jsonl``: measurements appended atomically, like the training results
=================  ===========================================================================

Examples
--------
>>> import cdp_tutorial as cdp
>>> from cdp_tutorial.edge import export_litert, measure
>>> model = cdp.models.vgg16(width_multiplier=0.25)
>>> path = export_litert(model, "vgg16.tflite", precision="fp32")      # doctest: +SKIP
>>> measure(path, images).median_ms                                      # doctest: +SKIP
"""

from cdp_tutorial.edge.energy import energy_model, rapl_available, RaplMeter  # noqa: F401
from cdp_tutorial.edge.export import (  # noqa: F401
    PRECISIONS, ConversionError, compare_with_keras, export_litert, litert_predict, load_interpreter,
    read_description, split_arrays)
from cdp_tutorial.edge.interleave import (  # noqa: F401
    BackToBack, RatioInterval, family_confidence, paired_interval, ratio_interval, time_back_to_back)
from cdp_tutorial.edge.measure import (  # noqa: F401
    LatencyStats, Measurement, PeakMemorySampler, check_warmup, measure, time_calls)
from cdp_tutorial.edge.store import EdgeStore  # noqa: F401

__all__ = ["PRECISIONS", "ConversionError", "export_litert", "load_interpreter", "litert_predict",
           "compare_with_keras", "read_description", "split_arrays", "measure", "Measurement",
           "PeakMemorySampler", "LatencyStats", "time_calls", "check_warmup", "BackToBack", "time_back_to_back",
           "RatioInterval", "ratio_interval", "paired_interval", "family_confidence", "energy_model",
           "rapl_available", "RaplMeter", "EdgeStore"]
