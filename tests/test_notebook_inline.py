"""The functions the notebooks show inline agree with the package.

A notebook that teaches a function writes it out in a code cell whose first line is
``# inline: <name>``. These tests read that cell from the committed ``.ipynb``, run its source,
and compare the result with :mod:`cdp_tutorial`. If someone edits the notebook's version (or the
package's) so that the two drift apart, a test here fails.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import cdp_tutorial as cdp

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def inline_cell(notebook: str, name: str) -> dict:
    """Execute the ``# inline: <name>`` cell of ``notebooks/<notebook>`` and return its namespace."""
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    marker = f"# inline: {name}"
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    found = [s for s in sources if s.lstrip().splitlines()[:1] == [marker]]
    assert len(found) == 1, f"{notebook}: expected exactly one cell starting with {marker!r}, found {len(found)}"
    namespace = {"__name__": f"inline_{name}"}
    exec(compile(found[0], f"{notebook}:{marker}", "exec"), namespace)
    return namespace


# ------------------------------------------------------------------ notebook 01: Eqs. 3, 5, 7


@pytest.fixture(scope="module")
def formulas():
    return inline_cell("01_complexity_equations.ipynb", "complexity_formulas")


@pytest.mark.parametrize("kernel, c_in, c_out, size, stride, bias", [
    (3, 3, 16, 32, 1, True),      # the notebook's toy first layer
    (3, 16, 32, 32, 2, False),    # strided, no bias (as in the tutorial's models)
    (5, 64, 192, 16, 1, True),    # an AlexNet-like 5x5 layer
    (1, 96, 24, 8, 1, False),     # a pointwise projection
])
def test_hand_formulas_match_profile(formulas, kernel, c_in, c_out, size, stride, bias):
    model = keras.Sequential([
        keras.Input((size, size, c_in)),
        keras.layers.Conv2D(c_out, kernel, strides=stride, padding="same", use_bias=bias, name="conv"),
    ])
    row = cdp.profile(model).layers.set_index("name").loc["conv"]
    out = -(-size // stride)  # "same" padding: ceil(size / stride)

    assert formulas["conv_params"](kernel, c_in, c_out, bias=bias) == row["params"]
    assert formulas["conv_macs"](kernel, c_in, c_out, out, out) == row["macs"]
    assert formulas["conv_memory"](kernel, c_in, c_out, out, out, bias=bias) == row["memory_bytes"]


def test_hand_memory_formula_follows_bytes_per_element(formulas):
    model = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(6, 3, padding="same", name="conv")])
    for precision, nbytes in [("fp16", 2), ("int8", 1)]:
        row = cdp.profile(model, bytes_per_element=precision).layers.set_index("name").loc["conv"]
        assert formulas["conv_memory"](3, 4, 6, 8, 8, bytes_per_element=nbytes) == row["memory_bytes"]


# ------------------------------------------------------------------ notebook 03: Algorithm 1


@pytest.fixture(scope="module")
def algorithm_1():
    return inline_cell("03_algorithm_1.ipynb", "algorithm_1")["algorithm_1"]


@pytest.fixture(scope="module")
def nets():
    return {name: cdp.models.build_model(name) for name in ("vgg16", "alexnet", "resnet50")}


@pytest.mark.parametrize("model, mode, target, step, seed, coupled", [
    ("vgg16", "FA", 0.3, 0.1, 0, "skip"),        # the notebook's own example
    ("vgg16", "PA", 0.1575, 0.1, 0, "skip"),     # the paper's VGG-16 PA reduction
    ("vgg16", "memory", 0.5, 0.2, 7, "skip"),
    ("alexnet", "params", 0.6, 0.1, 3, "skip"),
    ("alexnet", "MA", 0.4, 0.05, 11, "skip"),
    ("alexnet", "flops", 0.25, 0.3, 1, "skip"),
    ("resnet50", "FA", 0.5, 0.1, 2, "skip"),
    ("resnet50", "PA", 0.3, 0.1, 5, "tie"),
])
def test_inline_algorithm_1_matches_plan_pruning(algorithm_1, nets, model, mode, target, step, seed, coupled):
    widths, history = algorithm_1(nets[model], mode, target, step=step, seed=seed, coupled=coupled)
    plan = cdp.plan_pruning(nets[model], mode, target=target, step=step, seed=seed, coupled=coupled)

    assert widths == plan.widths
    assert [layer for layer, _, _ in history] == plan.history["layer"].tolist()
    assert [(before, after) for _, before, after in history] == \
        list(zip(plan.history["filters_before"], plan.history["filters_after"]))


def test_the_comparison_would_catch_a_drift(algorithm_1, nets):
    """A different step or seed changes the result, so agreement above is not an accident."""
    plan = cdp.plan_pruning(nets["vgg16"], "FA", target=0.3, step=0.1, seed=0)
    assert algorithm_1(nets["vgg16"], "FA", 0.3, step=0.1, seed=1)[0] != plan.widths
    assert algorithm_1(nets["vgg16"], "FA", 0.3, step=0.2, seed=0)[0] != plan.widths


def test_inline_cells_are_found_by_their_marker():
    with pytest.raises(AssertionError, match="expected exactly one cell"):
        inline_cell("03_algorithm_1.ipynb", "no_such_function")


# ------------------------------------------------------------------ notebook 05: PLS-VIP


@pytest.fixture(scope="module")
def inline_vip():
    return inline_cell("05_baselines_and_training_cost.ipynb", "vip")["vip"]


def informative_data(samples, columns, classes, seed, label_values=None):
    """Random features, some of them shifted by the class: data the notebook never shows."""
    rng = np.random.default_rng(seed)
    classes_of = rng.permutation(np.arange(samples) % classes)  # every class present
    labels = classes_of if label_values is None else np.asarray(label_values)[classes_of]
    features = rng.normal(size=(samples, columns)) + np.outer(classes_of, rng.normal(size=columns))
    return features, labels


@pytest.mark.parametrize("samples, columns, classes, components, seed", [
    (50, 7, 4, 2, 0),      # 50 x 7, four classes
    (120, 30, 10, 2, 1),   # ten classes, more columns than the notebook's toy example
    (40, 5, 2, 3, 2),      # two classes, three components
    (60, 12, 3, 1, 3),     # a single component
])
def test_inline_vip_matches_vip_scores(inline_vip, samples, columns, classes, components, seed):
    from cdp_tutorial.importance import vip_scores

    features, labels = informative_data(samples, columns, classes, seed)
    expected = vip_scores(features, labels, n_components=components)

    np.testing.assert_allclose(inline_vip(features, labels, n_components=components), expected,
                               rtol=1e-9, atol=1e-12)
    assert np.isclose(np.sum(expected ** 2), columns)


def test_inline_vip_takes_any_integer_labels(inline_vip):
    from cdp_tutorial.importance import vip_scores

    features, labels = informative_data(50, 7, 3, seed=4, label_values=[3, 7, 9])
    np.testing.assert_allclose(inline_vip(features, labels), vip_scores(features, labels), rtol=1e-9, atol=1e-12)


def test_the_vip_comparison_would_catch_a_drift(inline_vip):
    """Another number of components gives other VIPs, so agreement above is not an accident."""
    from cdp_tutorial.importance import vip_scores

    features, labels = informative_data(50, 7, 4, seed=0)
    assert not np.allclose(inline_vip(features, labels, n_components=1), vip_scores(features, labels, n_components=2))


# ------------------------------------------------------------------ the course: notebooks 00-05

COURSE = ["00_index.ipynb", "01_complexity_equations.ipynb", "02_weighted_sampling.ipynb",
          "03_algorithm_1.ipynb", "04_training_pruned_models.ipynb", "05_baselines_and_training_cost.ipynb"]


def cells_of(notebook: str) -> list[dict]:
    return json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("notebook", COURSE)
def test_course_notebook_opens_with_time_and_prerequisites_and_ends_with_exercises(notebook):
    cells = cells_of(notebook)
    text = ["".join(c["source"]) for c in cells]
    opening = text[0]
    assert "In this notebook you will" in opening and "minutes" in opening and "prerequisites" in opening
    markdown = "\n".join(t for c, t in zip(cells, text) if c["cell_type"] == "markdown")
    for heading in ("## Recap", "## Exercises", "## Further reading"):
        assert heading in markdown, f"{notebook}: no {heading!r} section"
    # a solution starts "# Solution N" as written, "#@title Solution N" once scripts/sync_notebooks.py has
    # moved it to the Solutions section at the end (tests/test_project.py checks that layout)
    is_solution = [c["cell_type"] == "code" and t.startswith(("# Solution", "#@title Solution")) for c, t in zip(cells, text)]
    solutions = [c for c, yes in zip(cells, is_solution) if yes]
    assert 2 <= len(solutions) <= 5, f"{notebook}: expected 2-5 worked solutions, found {len(solutions)}"
    assert all(c["metadata"].get("jupyter", {}).get("source_hidden") for c in solutions), "solutions are collapsed"
    lesson = [t for t in text if t.startswith("## Solutions")][:1]
    end_of_lesson = text[text.index(lesson[0]) - 1] if lesson else text[-1]
    assert "**Next:**" in end_of_lesson and ".ipynb" in end_of_lesson, f"{notebook}: the lesson ends with a link to the next notebook"


@pytest.mark.parametrize("notebook", COURSE)
def test_profile_is_checked_only_where_results_depend_on_it(notebook):
    checked = ["".join(c["source"]) for c in cells_of(notebook) if c["cell_type"] == "code"
               and "".join(c["source"]).startswith("# NBVAL_CHECK_OUTPUT")]
    checks_profile = any('print("profile:", profile.name)' in source for source in checked)
    assert checks_profile == (notebook in ("04_training_pruned_models.ipynb", "05_baselines_and_training_cost.ipynb"))


def test_notebook_04_fails_under_nbval_when_training_stops_learning():
    """The checked cell prints a yes/no from a margin over chance, so a trainer that stops learning
    changes a checked output (and nbval fails), while accuracy figures themselves are never checked."""
    checked = ["".join(c["source"]) for c in cells_of("04_training_pruned_models.ipynb")
               if c["cell_type"] == "code" and "".join(c["source"]).startswith("# NBVAL_CHECK_OUTPUT")]
    learns = [s for s in checked if "baseline learns" in s]
    assert len(learns) == 1 and "> 0.5" in learns[0]
    assert not any("test_accuracy" in s and "print(" in s and "learns" not in s for s in checked)
