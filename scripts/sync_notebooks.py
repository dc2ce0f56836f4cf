"""Keep every notebook's badges, Colab install cell, links, solutions and metadata in one canonical form.

    python scripts/sync_notebooks.py notebooks/03_algorithm_1.ipynb   # rewrite the notebooks named
    python scripts/sync_notebooks.py                                  # every notebook and the README
    python scripts/sync_notebooks.py --check [paths]                  # exit 1 and list what differs

Run it on your own notebooks after executing them. What it writes:

* **badges**: the line with ``colab-badge.svg`` is regenerated from ``cdp_tutorial.notebook``, whose
  repository address is the one setting ``Repository`` in ``pyproject.toml``; in ``README.md`` too;
* **the guarded Colab install cell** (the code cell that ``%pip install``-s ``cdp-tutorial`` under a
  ``google.colab`` guard) likewise: the package alone, no extras and no JupyterLab, since Colab has its
  own front end (see ``cdp_tutorial.notebook.COLAB_STACK``); another Colab-only cell (one installing
  something else) is left as written;
* **links**: every relative link in a markdown cell (``[04 · ...](04_x.ipynb)``,
  ``[instructors](../docs/instructors.md)``) keeps its relative target, which JupyterLab and Binder follow,
  and gets an absolute twin after it, ``([in Colab](...))`` for a notebook or ``([on GitHub](...))`` for any
  other file, because Colab opens a single notebook and cannot follow a relative link;
* **solutions** (see :func:`with_solutions_at_the_end`): every solution moves to a ``## Solutions``
  section at the very end, collapsed in JupyterLab and on Colab, code hidden behind a title on Colab, so
  that no answer shows before the reader goes looking for it; the exercises point there;
* **volatile metadata** is dropped: execution timings, widget state, kernel display details; widget
  outputs are dropped whole (their model ids change every run, and their plain-text fallback,
  ``VBox(children=(...``, means nothing to a reader: a notebook that shows a widget draws its default
  setting statically next to it), and TensorFlow's start-up and logger lines leave the outputs.
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
badges, colab_install_cell, absolute_link = _links.badges, _links.colab_install_cell, _links.absolute_link

# TensorFlow's C++ start-up lines (absl logging ignores TF_CPP_MIN_LOG_LEVEL for these) and its Python
# logger's lines (temporary asset folders, retracing notes with memory addresses): they say nothing
# about the lesson and differ on every run, so committed notebooks drop them.
TF_CHATTER = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |(INFO|WARNING):tensorflow:|To enable the following "
                        r"instructions|.*rebuild TensorFlow with the appropriate compiler flags"
                        # LiteRT's interpreter and converter (C++, past TF_CPP_MIN_LOG_LEVEL)
                        r"|INFO: Created TensorFlow Lite XNNPACK delegate|fully_quantize: \d+, inference_type: )")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# A relative link and the absolute twin this script adds after it (a second run replaces the twin).
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)"
                  r"(?: \(\[(?:in Colab|on GitHub)\]\([^)\s]+\)\))?")

# ----------------------------------------------------------------------------------- solutions
#: A solution's code cell starts with ``# Solution N`` (as written) or ``#@title Solution N`` (canonical).
SOLUTION_CODE = re.compile(r"^#(?:@title)? ?Solution (?P<number>\d+)\b[:.]? ?(?P<rest>.*)$")
#: A markdown cell that starts with ``**Solution N`` is a solution's label or prose answer.
SOLUTION_TEXT = re.compile(r"^\*\*Solution \d+\b")
SOLUTIONS_HEADING = (
    "## Solutions\n\n"
    "Try each exercise before you read on. In JupyterLab this section opens collapsed (click the arrow beside the "
    "heading) and each solution's code and output are folded away (click the bar beside a cell); on Colab the "
    "section opens collapsed too (click the heading's arrow), and then each solution shows its title and output, "
    "its code behind *Show code*. Every solution runs: the test suite executes them with the rest of the notebook."
)
#: The heading cell's id: Colab's notebook metadata ``colab.collapsed_sections`` lists the ids of the
#: headings whose sections open collapsed (Colab keeps a cell's id in ``metadata.id``; nbformat 4.5 has a
#: top-level ``id`` too: both are set).
SOLUTIONS_ID = "solutions"
SOLUTIONS_POINTER = ("Solutions are in the last section of this notebook, **Solutions**, after the further reading: "
                     "try each exercise first.")
# What the pointer replaced: the old layout's sentence under the exercises.
OLD_POINTERS = ("Worked solutions follow", "Solutions are in the last section of this notebook")


class LayoutError(ValueError):
    """A notebook cannot be put in canonical form without its author's decision."""


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
        if cell["cell_type"] == "markdown":
            if "colab-badge.svg" in source:
                lines = [badges(name) if "colab-badge.svg" in line else line for line in source.split("\n")]
                source = "\n".join(lines)
            source = with_absolute_twins(source)
        if cell["cell_type"] == "code" and is_package_install_cell(source):
            source = colab_install_cell()
        cell["source"] = source.splitlines(keepends=True)
        if "outputs" in cell:
            cell["outputs"] = [o for o in map(_without_chatter, cell["outputs"]) if o is not None]
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if WIDGET_MIME not in o.get("data", {})]
    nb["cells"] = with_solutions_at_the_end(nb["cells"], name)
    headings = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Solutions")]
    for cell in headings:
        if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):  # cell ids are required from 4.5 on
            cell["id"] = SOLUTIONS_ID
        cell["metadata"]["id"] = SOLUTIONS_ID
    if headings:  # Colab opens the Solutions section collapsed (it ignores JupyterLab's heading flag)
        nb["metadata"]["colab"] = {"collapsed_sections": [SOLUTIONS_ID]}
    return nb


def is_package_install_cell(source: str) -> bool:
    """Whether a code cell's source is (a version of) the guarded Colab install of this package."""
    return "google.colab" in source and "%pip install" in source and "cdp-tutorial" in source


def with_absolute_twins(markdown: str) -> str:
    """Give every relative link an absolute twin (Colab cannot follow relative links); refresh old twins."""
    def twin(match: re.Match) -> str:
        text, target = match["text"], match["target"]
        if re.match(r"^([a-z][a-z0-9+.-]*:|#)", target, re.I):  # absolute, mailto: or an anchor
            return match[0]
        label, url = absolute_link(target)
        return f"[{text}]({target}) ([{label}]({url}))"

    return LINK.sub(twin, markdown)


def with_solutions_at_the_end(cells: list, name: str) -> list:
    """Move every solution to a collapsed ``## Solutions`` section at the end, and point the exercises there.

    A solution is a code cell whose first line is ``# Solution N`` (``N`` the exercise's number), with
    any markdown cells that start with ``**Solution N`` (a label, or an answer in words). In the
    Solutions section, in their original order, each code cell's first line becomes ``#@title
    Solution N`` (the rest of that line moves to a comment below it), its code and output are hidden in
    JupyterLab (``jupyter.source_hidden``/``outputs_hidden``) and its code on Colab (``cellView:
    form``, which ignores ``source_hidden``). The section's heading starts collapsed in JupyterLab
    (``jp-MarkdownHeadingCollapsed``). GitHub shows everything, so the section comes last, after
    the further reading (:func:`canonical` also has Colab open it collapsed). The markdown cell with
    ``## Exercises`` ends with :data:`SOLUTIONS_POINTER`.

    Raises
    ------
    LayoutError
        If the notebook has exercises but no solution, or solutions but no ``## Exercises`` heading.
    """
    def first_line(cell) -> str:
        return "".join(cell["source"]).lstrip().split("\n", 1)[0]

    def is_solution(cell) -> bool:
        if cell["cell_type"] == "code":
            return bool(SOLUTION_CODE.match(first_line(cell)))
        return cell["cell_type"] == "markdown" and bool(SOLUTION_TEXT.match(first_line(cell)))

    def is_heading(cell) -> bool:  # regenerated below
        return cell["cell_type"] == "markdown" and first_line(cell) == "## Solutions"

    solutions = [c for c in cells if is_solution(c)]
    rest = [c for c in cells if not is_solution(c) and not is_heading(c)]
    exercises = [c for c in rest if c["cell_type"] == "markdown" and re.search(r"^## Exercises", "".join(c["source"]), re.M)]
    if not any(c["cell_type"] == "code" for c in solutions):
        if exercises:
            raise LayoutError(f"{name}: has '## Exercises' but no solution cell (a code cell starting '# Solution N')")
        return cells
    if len(exercises) != 1:
        raise LayoutError(f"{name}: solutions need exactly one markdown cell with '## Exercises', found {len(exercises)}")
    pointed = _with_pointer("".join(exercises[0]["source"]))
    exercises[0]["source"] = pointed.splitlines(keepends=True)
    heading = {"cell_type": "markdown", "metadata": {"jp-MarkdownHeadingCollapsed": True},
               "source": SOLUTIONS_HEADING.splitlines(keepends=True)}
    for cell in solutions:
        if cell["cell_type"] == "code":
            _hide_solution(cell)
    return rest + [heading] + solutions


def _with_pointer(markdown: str) -> str:
    kept = [line for line in markdown.rstrip("\n").split("\n") if not line.startswith(OLD_POINTERS)]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n\n" + SOLUTIONS_POINTER


def _hide_solution(cell: dict) -> None:
    lines = "".join(cell["source"]).lstrip().split("\n")
    match = SOLUTION_CODE.match(lines[0])
    head = [f"#@title Solution {match['number']}"] + ([f"# {match['rest']}"] if match["rest"].strip() else [])
    cell["source"] = "\n".join(head + lines[1:]).splitlines(keepends=True)
    cell["metadata"]["jupyter"] = {**cell["metadata"].get("jupyter", {}), "source_hidden": True, "outputs_hidden": True}
    cell["metadata"]["cellView"] = "form"


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


def canonical_readme(text: str) -> str:
    """The README with its badge line regenerated (one line: Colab and Binder on the index notebook)."""
    lines = text.split("\n")
    badge_lines = [i for i, line in enumerate(lines) if "colab-badge.svg" in line or "mybinder.org/badge" in line]
    if not badge_lines:
        return text
    lines[badge_lines[0]] = badges("00_index.ipynb")
    return "\n".join(line for i, line in enumerate(lines) if i not in badge_lines[1:])


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def canonical_text(path: Path, text: str) -> str:
    if path.suffix == ".md":
        return canonical_readme(text)
    return dump(canonical(json.loads(text), path.name))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report differences instead of writing")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (or README.md); default: all of them")
    args = parser.parse_args(argv)
    paths = args.paths or [*sorted((ROOT / "notebooks").glob("*.ipynb")), ROOT / "README.md"]
    stale, failed = [], []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            fixed = canonical_text(path, text)
        except LayoutError as error:
            failed.append(str(error))
            continue
        if fixed != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(fixed, encoding="utf-8")
    for message in failed:
        print("cannot put in canonical form:", message, file=sys.stderr)
    if args.check and stale:
        print("not in canonical form (run python scripts/sync_notebooks.py PATH):", ", ".join(stale))
    return 1 if failed or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
