"""The one record store: a JSON-lines file that is only ever appended to, safely, by any number of writers.

Every kind of result this package keeps is a JSON record per line: training runs
(``results.jsonl``, :class:`cdp_tutorial.results.ResultsStore`), edge measurements (``edge.jsonl``,
:mod:`cdp_tutorial.edge`) and device benchmarks (``data/devices/*.jsonl``, :mod:`cdp_tutorial.devices`).
:class:`RecordStore` is the one way they are written and read:

* **Appends never lose or damage a record.** An append takes an exclusive lock on the file
  (``fcntl.flock``), writes a missing final newline first (left by an editor or a crash elsewhere, it
  would glue the new record onto the last line), then writes the whole line with one ``write`` on a
  file opened for appending, and flushes it to disk. Two processes appending at once both keep every
  record; an append costs the same however long the file is.
* **Reading names the damage.** A line that is not a JSON object is reported as ``file:line``, with
  what is wrong, instead of a bare ``JSONDecodeError``.

On a system without ``fcntl`` (Windows) appends are not locked: one writer at a time there.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX; Windows has no flock, and there a store takes one writer at a time
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms this package is tested on
    fcntl = None

__all__ = ["RecordStore"]


class RecordStore:
    """A JSON-lines file of records (one JSON object per line), appended to under a lock.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.jsonl`` file; it and its folder are created by the first :meth:`append`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = RecordStore(pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl")
    >>> store.append({"key": "a", "accuracy": 0.9}); store.append({"key": "b", "accuracy": 0.8})
    >>> [r["key"] for r in store.records()]
    ['a', 'b']
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def append(self, record: dict) -> None:
        """Add one record at the end of the file; earlier records are never rewritten.

        Raises
        ------
        TypeError
            ``record`` is not a dict, or holds something JSON cannot represent.
        """
        if not isinstance(record, dict):
            raise TypeError(f"a record is a dict, got {type(record).__name__}")
        # NaN stays NaN (Python's json writes and reads it): a diverged run's loss is worth keeping.
        line = (json.dumps(record, sort_keys=True, default=_plain) + "\n").encode("utf-8")
        if self.path.exists() and not self.path.is_file():
            raise IsADirectoryError(f"{self.path} is a folder, not a results file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f, _locked(f):
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # an unterminated last line: end it before adding ours
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict]:
        """Every record, in the order they were added (none if the file does not exist yet).

        Raises
        ------
        ValueError
            A line is not a JSON object; the message names the file and line.
        """
        return [record for _, record in self.numbered()]

    def numbered(self) -> list[tuple[int, dict]]:
        """Every record with its line number (from 1), for messages that point at a line."""
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise IsADirectoryError(f"{self.path} is a folder, not a results file")
        records = []
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    reason = getattr(error, "msg", None) or str(error)
                    raise ValueError(f"{self.path}:{number} is not a JSON record ({reason}); "
                                     "repair or delete that line") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{self.path}:{number} is not a JSON object but a "
                                     f"{type(record).__name__}; repair or delete that line")
                records.append((number, record))
        return records

    def frame(self):
        """The records as a pandas DataFrame (one row per record)."""
        import pandas as pd

        return pd.DataFrame(self.records())


def _plain(value):
    """JSON for numpy scalars and arrays, paths and the like (``default=`` of ``json.dumps``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    raise TypeError(f"a record cannot hold a {type(value).__name__} ({value!r}); "
                    "store numbers, strings, lists and dicts")


@contextmanager
def _locked(f):
    if fcntl is None:  # pragma: no cover
        yield
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
