"""The command line's argument checks: one-line errors, no ignored option, no silent overwrite.

:mod:`cdp_tutorial.cli` declares the commands; this module holds what keeps them honest:

* :class:`OneLineParser` reports a bad option in one line (no usage block), as every other error;
* :func:`positive_int` / :func:`non_negative_int` parse counts, so ``--epochs 0`` and ``--epochs 2.7``
  are refused where they are typed instead of becoming a default or ``2``;
* :func:`refuse_ignored_options` refuses combinations in which an option would have no effect;
* :func:`check_output_file` / :func:`check_output_folder` refuse an existing file without
  ``--overwrite``, a folder where a file is wanted and a file where a folder is wanted;
* :func:`one_line` turns any user error (``OSError``, ``KeyError``, JSON errors ...) into one line
  that names the file.

Set ``CDP_TRACEBACK=1`` to see the full traceback of an error instead (for a bug report).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from cdp_tutorial.checks import check_int

__all__ = ["OneLineParser", "check_output_file", "check_output_folder", "non_negative_int", "one_line",
           "positive_int", "print_error", "refuse_ignored_options", "show_tracebacks"]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: what was wrong, and where the options are listed."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number ≥ {minimum}, got {text!r}") from None
        try:
            return check_int(value, "value", minimum=minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number ≥ {minimum}, got {value}") from None

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


#: ``type=`` of options that count something: ``--epochs``, ``--batch-size``, ``--train-size`` ...
positive_int = _count(1)
#: ``type=`` of options where 0 is meaningful (``--warmup`` may not be; its command checks it).
non_negative_int = _count(0)


def refuse_ignored_options(args) -> None:
    """Raise ``ValueError`` for an option that this combination would silently ignore.

    ``export --model-file`` with ``--plan`` or ``--width-multiplier`` (a saved model already has its
    widths); ``train`` with ``--target`` or ``--uniform`` but no pruning ``--mode`` (a baseline has
    no budget).
    """
    if args.command == "export" and args.model_file:
        given = [flag for flag, value in (("--plan", args.plan), ("--width-multiplier", args.width_multiplier))
                 if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} {_verb(given, 'applies', 'apply')} only to --model (an "
                             "architecture built here); "
                             f"{args.model_file} is a saved model and keeps its own widths")
    if args.command == "train" and args.mode.lower() == "baseline":
        given = [flag for flag, value in (("--target", args.target is not None), ("--uniform", args.uniform))
                 if value]
        if given:
            raise ValueError(f"{' and '.join(given)} {_verb(given, 'needs', 'need')} a pruning --mode (PA, FA "
                             "or MA); "
                             "without one, train trains the unpruned baseline")


def _verb(subjects, one: str, several: str) -> str:
    return one if len(subjects) == 1 else several


def check_output_file(path, overwrite: bool, option: str) -> Path | None:
    """``path`` if a file may be written there; ``ValueError``/``FileExistsError`` if not.

    Refuses a folder, a path below an existing file, and an existing file unless ``overwrite``.
    A missing parent folder is fine (it is created when the file is written).
    """
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name (e.g. {path / 'out'}{_suffix(option)})")
    _check_writable_above(path.parent, option, path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{option} {path} exists; pass --overwrite to replace it, or choose another name")
    return path


def check_output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder that exists (created if needed) and can be written to."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; give a folder (it is created if missing)")
    _check_writable_above(path, option, path)
    return path


def _check_writable_above(folder: Path, option: str, path: Path) -> None:
    """Raise unless the nearest existing folder at or above ``folder`` is a folder we can write in.

    Tried for real (a temporary folder made and removed): permission bits do not stop root, while a
    read-only file system or ``/proc`` does.
    """
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".cdp-write-test-", dir=parent))
            except OSError as error:
                raise PermissionError(f"{option} {path}: cannot write in {parent} ({error.strerror}); "
                                      "choose a place you can write to") from None
            return


def _suffix(option: str) -> str:
    return ".csv" if option == "--csv" else ".json"


def one_line(error: BaseException) -> str:
    """One line that says what went wrong, naming the file for ``OSError`` and ``JSONDecodeError``."""
    if isinstance(error, json.JSONDecodeError):
        text = f"not valid JSON at line {error.lineno} column {error.colno} ({error.msg})"
    elif isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or error}"
    elif isinstance(error, KeyError):
        text = f"missing key {error.args[0]!r}" if error.args else "missing key"
    else:
        text = re.sub(r"^\[Errno \d+\] ", "", str(error)) or type(error).__name__
    return " ".join(text.split())  # messages that list places on several lines become one line


def show_tracebacks() -> bool:
    """True when ``CDP_TRACEBACK`` is set: errors are raised with their traceback (for bug reports)."""
    return os.environ.get("CDP_TRACEBACK", "") not in ("", "0")


def print_error(command: str, error: BaseException) -> int:
    """Print ``cdp-tutorial <command>: error: <one line>`` to stderr; return the exit status 2."""
    print(f"cdp-tutorial {command}: error: {one_line(error)}", file=sys.stderr)
    return 2
