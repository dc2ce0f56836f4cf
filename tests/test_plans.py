"""Plan files as users edit them: every field checked on load, the file named in every error.

Each case writes a real plan with ``plan.save``, damages or edits it the way a person with a text
editor would, and loads it back.
"""

import json

import pytest

import cdp_tutorial as cdp
from cdp_tutorial.plans import PruningPlan


@pytest.fixture(scope="module")
def alexnet():
    return cdp.models.alexnet()


@pytest.fixture(scope="module")
def plan(alexnet):
    return cdp.plan_pruning(alexnet, "FA", target=0.5, seed=0)


def saved(tmp_path, plan, edit=None, text=None):
    """``plan`` saved to a file, then its JSON edited by ``edit(fields)`` or replaced by ``text``."""
    path = plan.save(tmp_path / "plan.json")
    if edit is not None:
        fields = json.loads(path.read_text(encoding="utf-8"))
        edit(fields)
        path.write_text(json.dumps(fields, indent=1), encoding="utf-8")
    if text is not None:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_saved_plan_loads_back_unchanged(tmp_path, plan):
    loaded = PruningPlan.load(saved(tmp_path, plan))
    assert (loaded.widths, loaded.final, loaded.seed) == (plan.widths, plan.final, plan.seed)
    assert loaded.summary() == plan.summary() and loaded.history.equals(plan.history)


def test_a_fractional_width_is_refused_not_truncated(tmp_path, plan):
    path = saved(tmp_path, plan, edit=lambda f: f["widths"].update(conv1=4.7))
    with pytest.raises(ValueError, match=r"widths\['conv1'\] must be an integer in \[1, 64\], got 4.7") as error:
        PruningPlan.load(path)
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize("width", [0, 65, -3])
def test_a_width_outside_one_to_the_baseline_width_is_refused(tmp_path, plan, width):
    path = saved(tmp_path, plan, edit=lambda f: f["widths"].update(conv1=width))
    with pytest.raises(ValueError, match=rf"{path}: widths\['conv1'\] must be an integer in \[1, 64\], got {width}"):
        PruningPlan.load(path)


def test_a_layer_missing_from_widths_is_refused_not_kept_whole(tmp_path, plan):
    path = saved(tmp_path, plan, edit=lambda f: f["widths"].pop("conv3"))
    with pytest.raises(ValueError, match=rf"{path}: widths lacks the prunable layer\(s\) conv3"):
        PruningPlan.load(path)


def test_hand_edited_widths_are_recounted_on_the_model_never_summarised_stale(tmp_path, plan, alexnet):
    path = saved(tmp_path, plan, edit=lambda f: f["widths"].update(conv1=8))

    # without the model the totals cannot be counted: refused, never reported stale
    with pytest.raises(ValueError, match=rf"{path}: the widths \(or totals\) were edited after the plan was made"):
        PruningPlan.load(path)

    edited = PruningPlan.load(path, model=alexnet)
    truth = cdp.profile(cdp.apply_plan(alexnet, edited)).totals
    assert edited.widths["conv1"] == 8 and edited.final == truth != plan.final
    assert f"{truth.macs:,} MACs" in edited.summary()
    assert PruningPlan.load(edited.save(tmp_path / "recounted.json")).final == truth  # consistent again


def test_widths_edited_in_memory_make_summary_refuse_until_recomputed(plan, alexnet):
    edited = PruningPlan.from_dict(plan.to_dict())
    edited.widths["conv2"] = 10
    with pytest.raises(ValueError, match="were edited after its totals were counted.*plan.recompute"):
        edited.summary()
    recounted = edited.recompute(alexnet)
    assert recounted.final == cdp.profile(cdp.apply_plan(alexnet, recounted)).totals
    assert "MACs" in recounted.summary()


def test_a_summary_says_when_edited_widths_exceed_the_budget(tmp_path, plan, alexnet):
    path = saved(tmp_path, plan, edit=lambda f: f["widths"].update(f["baseline_widths"]))
    summary = PruningPlan.load(path, model=alexnet).summary()
    assert "> (over) budget" in summary and "removed params 0.0%" in summary


def test_an_unknown_mode_is_refused_on_load_not_in_summary(tmp_path, plan):
    path = saved(tmp_path, plan, edit=lambda f: f.update(mode="speed"))
    with pytest.raises(ValueError, match=rf"{path}: unknown mode 'speed'"):
        PruningPlan.load(path)


@pytest.mark.parametrize("text, message", [
    ('{"format": "cdp-tutorial/pruning-plan", "model_name": "alex', r"not valid JSON at line 1 column \d+"),
    ("", "is empty"),
    ("\n  \n", "is empty"),
    ("[1, 2, 3]", "holds a JSON list, not a pruning plan"),
    ('{"widths": {}}', "not a cdp-tutorial pruning plan"),
])
def test_damaged_plan_files_name_the_file(tmp_path, plan, text, message):
    path = saved(tmp_path, plan, text=text)
    with pytest.raises(ValueError, match=message) as error:
        PruningPlan.load(path)
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize("key", ["mode", "widths", "final", "baseline_widths"])
def test_a_missing_key_is_named_with_the_file(tmp_path, plan, key):
    path = saved(tmp_path, plan, edit=lambda f: f.pop(key))
    with pytest.raises(ValueError, match=rf"{path}: lacks {key}; a plan saved by PruningPlan.save has all of"):
        PruningPlan.load(path)


def test_a_plan_for_another_model_is_refused_when_recounted(tmp_path, plan):
    with pytest.raises(ValueError, match="layer .conv2. has 64 filters but the plan was made for 192"):
        PruningPlan.load(saved(tmp_path, plan), model=cdp.models.vgg16())


def test_apply_plan_refuses_a_plan_that_lost_a_layer_instead_of_keeping_it_whole(plan, alexnet):
    edited = PruningPlan.from_dict(plan.to_dict())
    del edited.widths["conv4"]
    with pytest.raises(ValueError, match=r"no width for the prunable layer\(s\) conv4"):
        cdp.apply_plan(alexnet, edited)
