"""The command line under bad input: every error is one line that names the option or the file.

Real invocations of ``cdp_tutorial.cli.main`` in this process (TensorFlow loads once), real files in
``tmp_path``; one subprocess where only a fresh interpreter shows the bug (a checkpoint whose
optimizer uses this package's own learning-rate schedule).
"""

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cdp_tutorial as cdp
from cdp_tutorial import cli


def run(argv, capsys):
    """``(exit status, stderr)`` of ``cdp-tutorial argv``; argparse's own errors exit instead of returning."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    if code:
        assert len(lines) == 1 and "Traceback" not in err, err  # one line, no traceback
    return code, lines[0] if lines else ""


# --------------------------------------------------------------------------- options that would be ignored


@pytest.mark.parametrize("extra, message", [
    (["--plan", "p.json"], "--plan applies only to --model"),
    (["--width-multiplier", "0.25"], "--width-multiplier applies only to --model"),
    (["--plan", "p.json", "--width-multiplier", "0.5"], "--plan and --width-multiplier apply only to --model"),
])
def test_export_of_a_saved_model_refuses_options_it_would_ignore(tmp_path, capsys, extra, message):
    code, error = run(["export", "--model-file", tmp_path / "m.keras", *extra, "--out", tmp_path / "e"], capsys)
    assert code == 2 and message in error and "keeps its own widths" in error
    assert not (tmp_path / "e").exists()


def test_export_applies_the_width_multiplier_after_the_plan(tmp_path, capsys):
    plan = cdp.plan_pruning(cdp.models.alexnet(), "FA", target=0.5, seed=0)
    plan_path = plan.save(tmp_path / "alex_fa.json")

    code, _ = run(["export", "--model", "alexnet", "--plan", plan_path, "--width-multiplier", "0.25",
                   "--test-size", "20", "--out", tmp_path / "e"], capsys)

    assert code == 0
    described = json.loads((tmp_path / "e" / "alex_fa_x0.25_fp32.tflite.json").read_text())
    narrow = {name: max(1, round(w * 0.25)) for name, w in plan.widths.items()}
    trained_as = cdp.models.alexnet(widths=narrow, width_multiplier=0.25)  # what the quick profile trains
    assert described["params"] == trained_as.count_params() < cdp.apply_plan(cdp.models.alexnet(), plan).count_params()


@pytest.mark.parametrize("extra, message", [
    (["--target", "0.3"], "--target needs a pruning --mode"),
    (["--uniform"], "--uniform needs a pruning --mode"),
    (["--mode", "baseline", "--target", "0.3"], "--target needs a pruning --mode"),
])
def test_train_refuses_a_target_without_a_pruning_mode(tmp_path, capsys, extra, message):
    code, error = run(["train", "--model", "alexnet", *extra, "--out", tmp_path / "r"], capsys)
    assert code == 2 and message in error and "trains the unpruned baseline" in error
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- an explicit 0 is never a default


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "alexnet", "--epochs", "0"], "argument --epochs: must be a whole number ≥ 1, got 0"),
    (["train", "--model", "alexnet", "--epochs", "2.7"], "argument --epochs: must be a whole number ≥ 1, got '2.7'"),
    (["train", "--model", "alexnet", "--batch-size", "0"], "argument --batch-size: must be a whole number ≥ 1"),
    (["sweep", "--model", "alexnet", "--train-size", "0"], "argument --train-size: must be a whole number ≥ 1"),
    (["bench-device", "--quick", "--train-size", "0"], "argument --train-size: must be a whole number ≥ 1"),
    (["bench-device", "--quick", "--latency-runs", "0"], "argument --latency-runs: must be a whole number ≥ 1"),
    (["bench-device", "--quick", "--width-multiplier", "0"], "width_multiplier must be > 0 and ≤ 1, got 0"),
])
def test_an_explicit_zero_is_refused_not_replaced_by_a_default(tmp_path, capsys, argv, message):
    code, error = run([*argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and message in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["plan", "--mode", "FA", "--target", "0.3"], ["train"]])
def test_a_seed_above_2_to_the_32_is_refused_before_anything_runs(tmp_path, capsys, command):
    code, error = run([command[0], "--model", "alexnet", *command[1:], "--seed", str(2**32),
                       *(["--out", tmp_path / "r"] if command == ["train"] else [])], capsys)
    assert code == 2 and "seed must be an integer in [0, 4294967295], got 4294967296" in error


# --------------------------------------------------------------------------- files written: never replaced unasked


def test_profile_csv_never_overwrites_without_overwrite(tmp_path, capsys):
    existing = tmp_path / "notes.csv"
    existing.write_text("my own notes\n")

    code, error = run(["profile", "--model", "alexnet", "--csv", existing], capsys)
    assert code == 2 and f"--csv {existing} exists; pass --overwrite" in error
    assert existing.read_text() == "my own notes\n"

    assert run(["profile", "--model", "alexnet", "--csv", existing, "--overwrite"], capsys)[0] == 0
    assert existing.read_text().startswith("name,type,")


def test_profile_csv_in_a_new_folder_creates_it(tmp_path, capsys):
    target = tmp_path / "missing" / "x.csv"
    assert run(["profile", "--model", "alexnet", "--csv", target], capsys)[0] == 0
    assert target.read_text().startswith("name,type,")


def test_summary_csv_replaces_a_file_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.jsonl").write_text("")
    existing = tmp_path / "table.csv"
    existing.write_text("keep me\n")
    code, error = run(["summary", "--out", out, "--csv", existing], capsys)
    assert code == 2 and "pass --overwrite" in error and existing.read_text() == "keep me\n"


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "alexnet", "--out", "{file}"], "--out {file} is a file; give a folder"),
    (["export", "--model", "alexnet", "--out", "{file}"], "--out {file} is a file; give a folder"),
    (["plan", "--model", "alexnet", "--mode", "FA", "--target", "0.5", "--out", "{dir}", "--overwrite"],
     "--out {dir} is a folder; give a file name"),
    (["profile", "--model", "alexnet", "--csv", "{file}/x.csv"], "--csv {file}/x.csv: {file} is a file, not a folder"),
    (["summary", "--out", "{dir}", "--csv", "{dir}"], "--csv {dir} is a folder; give a file name"),
])
def test_an_output_of_the_wrong_kind_is_one_clear_line(tmp_path, capsys, argv, message):
    places = {"file": tmp_path / "a-file.txt", "dir": tmp_path}
    places["file"].write_text("not a folder\n")
    code, error = run([a.format(**places) for a in argv], capsys)
    assert code == 2 and message.format(**places) in error
    assert places["file"].read_text() == "not a folder\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where nobody can write")
@pytest.mark.parametrize("argv", [["train", "--model", "alexnet", "--out", "/proc/cdp-results"],
                                  ["profile", "--model", "alexnet", "--csv", "/proc/cdp/x.csv"]])
def test_an_output_nobody_can_write_is_one_clear_line(capsys, argv):
    # /proc refuses new files even to root, whom permission bits (chmod) would not stop
    code, error = run(argv, capsys)
    assert code == 2 and f"{argv[-1]}: cannot write in /proc" in error


# --------------------------------------------------------------------------- model files


@pytest.fixture(scope="module")
def tiny_model():
    return cdp.models.alexnet(width_multiplier=0.0625)


def test_a_truncated_keras_file_is_named_not_reported_missing(tmp_path, capsys, tiny_model):
    whole = tiny_model.save(tmp_path / "whole.keras") or tmp_path / "whole.keras"
    cut = tmp_path / "cut.keras"
    cut.write_bytes(whole.read_bytes()[:5000])
    for command in (["export", "--model-file", cut, "--out", tmp_path / "e"], ["measure", cut, "--out", tmp_path / "m"]):
        code, error = run(command, capsys)
        assert code == 2 and f"{cut} is not a readable .keras file: it is cut short or damaged" in error


def test_a_renamed_h5_file_is_recognised(tmp_path, capsys, tiny_model):
    tiny_model.save(tmp_path / "legacy.h5")
    renamed = (tmp_path / "legacy.h5").rename(tmp_path / "legacy.keras")
    code, error = run(["export", "--model-file", renamed, "--out", tmp_path / "e"], capsys)
    assert code == 2 and "is an HDF5 (.h5) file renamed to .keras; give it its .h5 name back" in error


def test_export_and_measure_read_the_packages_own_training_checkpoint(tmp_path):
    from cdp_tutorial.data import load_dataset
    from cdp_tutorial.training import train

    data = load_dataset("fixture", train_size=40, test_size=20)
    train(cdp.models.alexnet(width_multiplier=0.0625), data, "modern", epochs=1, batch_size=20,
          run_dir=tmp_path / "run")  # its optimizer's schedule is cdp_tutorial's WarmupCosine
    (checkpoint,) = (tmp_path / "run").glob("checkpoint-e*.keras")
    # a fresh interpreter: nothing has imported cdp_tutorial.training (and registered WarmupCosine)
    script = ("import sys; from cdp_tutorial import cli; a = sys.argv[1:]; "
              "sys.exit(cli.main(['export', '--model-file', a[0], '--test-size', '20', '--out', a[1]]) "
              "or cli.main(['measure', a[0], '--images', '3', '--warmup', '1', '--out', a[1]]))")
    done = subprocess.run([sys.executable, "-c", script, str(checkpoint), str(tmp_path / "edge")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "edge" / f"{checkpoint.stem}_fp32.tflite").is_file()
    (record,) = [json.loads(line) for line in (tmp_path / "edge" / "edge.jsonl").read_text().splitlines()]
    assert record["name"] == checkpoint.stem and record["images"] == 3


# --------------------------------------------------------------------------- data that no network can learn


def write_idx(path: Path, array) -> None:
    array = np.asarray(array, dtype=np.uint8)
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.tobytes())


def test_labels_beyond_the_classes_stop_train_before_it_starts(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 10
    labels[6] = 200
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path / "data"))

    code, error = run(["train", "--model", "alexnet", "--dataset", "fashion_mnist", "--profile", "quick",
                       "--epochs", "1", "--out", tmp_path / "r"], capsys)

    assert code == 2
    assert f"{folder / 'train-labels-idx1-ubyte.gz'}: label 200 at index 6 is not a class" in error
    assert not list(tmp_path.glob("r/runs/*/config.json"))  # no half-started run left behind


# --------------------------------------------------------------------------- damaged inputs reach the edge as one line


@pytest.mark.parametrize("text, message", [
    ('{"format": "cdp-tutorial/pruning-plan", "model_name": "alex', "not valid JSON at line 1 column"),
    ("[]", "holds a JSON list, not a pruning plan"),
    ('{"format": "cdp-tutorial/pruning-plan"}', "lacks model_name, mode"),
])
def test_export_with_a_damaged_plan_names_the_file(tmp_path, capsys, text, message):
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    code, error = run(["export", "--model", "alexnet", "--plan", plan, "--out", tmp_path / "e"], capsys)
    assert code == 2 and f"{plan}: " in error and message in error


@pytest.mark.parametrize("command", [["summary"], ["sweep", "--model", "alexnet", "--modes", "FA", "--seeds", "0"]])
def test_a_damaged_results_line_is_one_line_naming_file_and_line(tmp_path, capsys, command):
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.jsonl").write_text('{"key": "a"}\n{"key": "b", "oops\x01": 2}\n')
    code, error = run([*command, "--out", out], capsys)
    assert code == 2 and f"{out / 'results.jsonl'}:2" in error
