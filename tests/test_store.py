"""The one record store: appends by several processes at once, damaged files, the stores built on it."""

import json
import subprocess
import sys

import pytest

import cdp_tutorial.store

from cdp_tutorial.devices import append_record, load_results
from cdp_tutorial.edge import EdgeStore
from cdp_tutorial.experiments import ResultsStore
from cdp_tutorial.store import RecordStore

RUN = {"key": "a", "model": "vgg16", "dataset": "fixture", "profile": "quick", "label": "quick", "method": "cdp",
       "mode": "baseline", "target": None, "seed": 0, "test_accuracy": 0.7}


# A writer process loads store.py alone (standard library only), not the package: no TensorFlow start-up.
WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("store", {path!r})
store = importlib.util.module_from_spec(spec); spec.loader.exec_module(store)
records = store.RecordStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    records.append({{"key": f"{{sys.argv[2]}}-{{i}}", "writer": sys.argv[2], "padding": "x" * 2000}})
"""


def test_two_processes_appending_at_once_keep_every_record(tmp_path):
    path = tmp_path / "results.jsonl"
    code = WRITER.format(path=cdp_tutorial.store.__file__)
    writers = [subprocess.Popen([sys.executable, "-c", code, str(path), w, "100"]) for w in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    records = RecordStore(path).records()
    assert len(records) == 200
    assert {r["key"] for r in records} == {f"{w}-{i}" for w in "ab" for i in range(100)}


def test_an_append_never_rewrites_what_is_there(tmp_path):
    store = ResultsStore(tmp_path)
    store.append({**RUN, "key": "a"})
    first = store.path.read_bytes()
    store.append({**RUN, "key": "b"})
    assert store.path.read_bytes().startswith(first)  # earlier bytes untouched: an append, not a rewrite
    assert [r["key"] for r in store.records()] == ["a", "b"] and store.finished() == {"a", "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # no temporary or lock files


def test_a_last_line_without_its_newline_is_ended_before_the_next_record(tmp_path):
    """An editor (or a crash elsewhere) left the file without a final newline: nothing gets glued on."""
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({**RUN, "key": "edited by hand"}))
    store = ResultsStore(tmp_path)
    store.append({**RUN, "key": "new"})
    assert [r["key"] for r in store.records()] == ["edited by hand", "new"]


@pytest.mark.parametrize("line, reason", [
    ('{"key": "a", "acc', "not a JSON record"),
    ('{"key": "a\x01"}', "not a JSON record"),
    ("[1, 2]", "not a JSON object but a list"),
])
def test_a_damaged_line_is_named_by_file_and_line(tmp_path, line, reason):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({**RUN, "key": "fine"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=f"results.jsonl:2 is {reason}"):
        ResultsStore(tmp_path).records()


@pytest.mark.parametrize("record, message", [
    ({"accuracy": 0.5}, "results.jsonl:2 is not a run record \\(it has no key, model"),
    ({**RUN, "key": "b", "test_accuracy": "0.7"}, "results.jsonl:2: test_accuracy must be a number in \\[0, 1\\]"),
    ({**RUN, "key": "b", "test_accuracy": 70.0}, "results.jsonl:2: test_accuracy must be a number"),
])
def test_a_line_that_is_no_run_record_is_named_by_file_and_line(tmp_path, record, message):
    (tmp_path / "results.jsonl").write_text(json.dumps(RUN) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=message):
        ResultsStore(tmp_path).finished()


def test_edge_and_device_results_are_the_same_store(tmp_path):
    edge = EdgeStore(tmp_path)
    assert isinstance(edge, RecordStore) and edge.path.name == "edge.jsonl"
    devices = tmp_path / "cpu.jsonl"
    devices.write_text('{"kind": "table6"}')  # no final newline
    append_record(devices, {"kind": "table6", "device": {"cpu_model": "x", "usable_cores": 2}})
    assert len(load_results(devices)) == 2
    devices.write_text('{"kind": "table6"}\nnot json\n')
    with pytest.raises(ValueError, match="cpu.jsonl:2 is not a JSON record"):
        load_results(devices)


def test_a_folder_in_place_of_the_file_is_named(tmp_path):
    (tmp_path / "results.jsonl").mkdir()
    with pytest.raises(IsADirectoryError, match="results.jsonl is a folder"):
        ResultsStore(tmp_path).append({"key": "a"})
