"""Writing files so that nothing is ever half-written: one helper, used by every module that saves.

A file is written under a temporary name beside its target, flushed to disk, then renamed onto the
target in one step (``os.replace``). A crash, a Ctrl-C or a full disk leaves the previous version
or nothing, never a truncated file; the temporary file is removed on failure.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

#: Temporary files start with this, so a folder's leftovers can be recognised and cleaned up.
TMP_PREFIX = ".tmp-"


def write_atomically(target, write) -> Path:
    """Call ``write(temporary_path)``, then move the written file onto ``target`` in one step.

    The temporary name ends like ``target``, because some writers (Keras, NumPy) choose the format
    from the extension.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def write_json_atomically(target, obj, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as JSON to ``target`` atomically; with ``overwrite=False`` keep an existing file."""
    target = Path(target)
    if not overwrite and target.exists():
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True)

    return write_atomically(target, write)
