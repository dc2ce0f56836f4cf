"""Where edge measurements are kept: ``edge.jsonl`` in an output folder, one record per line.

The same store as the training results (:class:`cdp_tutorial.experiments.ResultsStore`: every
addition is written atomically, earlier records are never lost), under its own file name so that
measurements and training runs do not mix.
"""

from __future__ import annotations

from pathlib import Path

from cdp_tutorial.experiments import ResultsStore

EDGE_RESULTS_FILE = "edge.jsonl"


class EdgeStore(ResultsStore):
    """``edge.jsonl`` in ``out_dir``: one measurement (with its device record) per line.

    Examples
    --------
    >>> store = EdgeStore("results/")                                   # doctest: +SKIP
    >>> store.append(measurement.record()); store.frame()               # doctest: +SKIP
    """

    def __init__(self, out_dir):
        super().__init__(out_dir)
        self.path = Path(out_dir) / EDGE_RESULTS_FILE
