"""Where edge measurements are kept: ``edge.jsonl`` in an output folder, one record per line.

The package's one record store (:class:`cdp_tutorial.store.RecordStore`: locked appends that never
rewrite earlier records), under its own file name so that measurements and training runs do not mix.
"""

from __future__ import annotations

from pathlib import Path

from cdp_tutorial.store import RecordStore

EDGE_RESULTS_FILE = "edge.jsonl"


class EdgeStore(RecordStore):
    """``edge.jsonl`` in ``out_dir``: one measurement (with its device record) per line.

    Examples
    --------
    >>> store = EdgeStore("results/")                                   # doctest: +SKIP
    >>> store.append(measurement.record()); store.frame()               # doctest: +SKIP
    """

    def __init__(self, out_dir):
        super().__init__(Path(out_dir) / EDGE_RESULTS_FILE)
