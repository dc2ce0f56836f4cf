"""Keep every notebook's badges, Colab install cell and metadata in their one canonical form.

    python scripts/sync_notebooks.py          # rewrite notebooks/*.ipynb in place
    python scripts/sync_notebooks.py --check  # exit 1 and list what differs (used by the tests)

* the badge line (the line with ``colab-badge.svg``) is regenerated from ``cdp_tutorial.notebook``;
* the guarded Colab install cell (the code cell that ``%pip install``-s ``cdp-tutorial`` under a
  ``google.colab`` guard) likewise: it installs the package alone, no extras and no JupyterLab, since
  Colab has its own front end (see ``cdp_tutorial.notebook.COLAB_STACK``); another Colab-only cell
  (one installing something else) is left as written;
* volatile metadata is dropped: execution timings, widget state, kernel display details;
  widget outputs keep only their plain-text fallback (model ids change every run).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_links():
    """Import cdp_tutorial/notebook.py alone: the package's __init__ would load TensorFlow."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_links", ROOT / "cdp_tutorial" / "notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_links = _load_links()
badges, colab_install_cell = _links.badges, _links.colab_install_cell

# TensorFlow's C++ start-up lines (absl logging ignores TF_CPP_MIN_LOG_LEVEL for these) and its Python
# logger's lines (temporary asset folders, retracing notes with memory addresses): they say nothing
# about the lesson and differ on every run, so committed notebooks drop them.
TF_CHATTER = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |(INFO|WARNING):tensorflow:|To enable the following "
                        r"instructions|.*rebuild TensorFlow with the appropriate compiler flags)")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def canonical(nb: dict, name: str) -> dict:
    nb = json.loads(json.dumps(nb))
    nb["metadata"] = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        meta.pop("collapsed", None)
        meta.pop("scrolled", None)
        cell["metadata"] = meta
        if cell["cell_type"] == "markdown" and "colab-badge.svg" in source:
            lines = [badges(name) if "colab-badge.svg" in line else line for line in source.split("\n")]
            source = "\n".join(lines)
        if cell["cell_type"] == "code" and is_package_install_cell(source):
            source = colab_install_cell()
        cell["source"] = source.splitlines(keepends=True)
        if "outputs" in cell:
            cell["outputs"] = [o for o in map(_without_chatter, cell["outputs"]) if o is not None]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME in data:
                del data[WIDGET_MIME]
            output.get("metadata", {}).pop(WIDGET_MIME, None)
    return nb


def is_package_install_cell(source: str) -> bool:
    """Whether a code cell's source is (a version of) the guarded Colab install of this package."""
    return "google.colab" in source and "%pip install" in source and "cdp-tutorial" in source


def _without_chatter(output: dict) -> dict | None:
    if output.get("output_type") != "stream":  # TensorFlow's Python logger may write to either stream
        return output
    text = "".join(output["text"])
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not TF_CHATTER.match(line)]
    if len(kept) == len(lines):
        return output  # nothing to drop: leave the output exactly as it was written
    if not "".join(kept).strip():
        return None
    return {**output, "text": "".join(kept)}


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report differences instead of writing")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
    stale = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        fixed = dump(canonical(json.loads(text), path.name))
        if fixed != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(fixed, encoding="utf-8")
    if args.check and stale:
        print("not in canonical form (run python scripts/sync_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
