"""Tests for cdp_tutorial.edge: real LiteRT conversion and real measurement of a small trained model.

A small CNN is planned and pruned with Algorithm 1, trained for one epoch on the committed
fixture, exported to LiteRT and run with ai_edge_litert's interpreter — nothing is mocked.
"""

import doctest
import importlib
import json
import os
import time

import keras
import numpy as np
import psutil
import pytest
import tensorflow as tf

import cdp_tutorial as cdp
from cdp_tutorial.data import load_dataset
from cdp_tutorial.edge import (ConversionError, EdgeStore, LatencyStats, compare_with_keras, energy_model,
                               export_litert, load_interpreter, measure, rapl_available, RaplMeter,
                               split_arrays, time_back_to_back, time_calls)
from cdp_tutorial.training import train


def small_cnn(widths=(16, 16, 32)):
    L = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i, width in enumerate(widths):
        x = L.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        x = L.MaxPooling2D(name=f"pool{i}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, name="logits")(x), name="small_cnn")


@pytest.fixture(scope="module")
def data():
    return load_dataset("fixture", train_size=320, test_size=128)


@pytest.fixture(scope="module")
def pruned(data):
    """A FLOPs-aware pruned small CNN, trained for one epoch: what a user would deploy."""
    keras.utils.set_random_seed(0)
    baseline = small_cnn()
    plan = cdp.plan_pruning(baseline, "FA", target=0.5, seed=0)
    model = cdp.apply_plan(baseline, plan)
    train(model, data, epochs=1, batch_size=64, seed=0, verbose=0)
    return baseline, model


@pytest.fixture(scope="module")
def exported(pruned, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge")
    _, model = pruned
    train_images, _ = split_arrays(data, "train", limit=64)
    return {"fp32": export_litert(model, folder / "small_fp32.tflite", "fp32"),
            "full_int8": export_litert(model, folder / "small_int8.tflite", "full_int8",
                                       representative_images=train_images)}


def test_a_limited_split_is_the_first_images_cut_before_conversion(data):
    """Calibration takes 200 images: only those are converted to float32, not the whole split."""
    images, labels = split_arrays(data, "train", limit=10)
    every, every_label = split_arrays(data, "train")
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.float32 and len(every) == 320
    np.testing.assert_array_equal(images, every[:10])
    np.testing.assert_array_equal(labels, every_label[:10])
    with pytest.raises(ValueError, match="limit must be an integer ≥ 1"):
        split_arrays(data, "train", limit=0)


def test_a_pruned_model_exports_and_predicts_like_keras(pruned, exported, data):
    _, model = pruned
    images, labels = split_arrays(data, "test")
    check = compare_with_keras(model, exported["fp32"], images, labels)
    assert check["agreement"] == 1.0
    assert check["max_abs_output_diff"] < 1e-3
    assert check["litert_accuracy"] == check["keras_accuracy"]
    described = json.loads(exported["fp32"].with_name("small_fp32.tflite.json").read_text())
    assert described["precision"] == "fp32" and described["params"] == model.count_params()


def test_full_integer_file_is_smaller_and_mostly_agrees(pruned, exported, data):
    _, model = pruned
    images, labels = split_arrays(data, "test")
    check = compare_with_keras(model, exported["full_int8"], images, labels)
    assert check["agreement"] >= 0.85  # int8 rounding flips a few borderline images, not most
    assert exported["full_int8"].stat().st_size < 0.6 * exported["fp32"].stat().st_size
    # weights and activations really are int8 inside: the interpreter reports int8 tensors
    dtypes = {d["dtype"] for d in load_interpreter(exported["full_int8"]).get_tensor_details()}
    assert np.int8 in dtypes


def test_measure_a_litert_file_with_the_papers_protocol(exported, data):
    images, _ = split_arrays(data, "test")
    m = measure(exported["fp32"], images, n_images=30, warmup=3, threads=2)
    assert (m.runtime, m.threads, m.images) == ("litert", 2, 30)
    assert len(m.latencies_ms) == 30
    assert 0 < min(m.latencies_ms) <= m.median_ms <= m.p90_ms <= max(m.latencies_ms)
    assert m.throughput_ips == pytest.approx(30 / m.wall_time_s)
    assert m.peak_rss_mb * 2**20 >= psutil.Process().memory_info().rss * 0.5
    assert m.device["logical_cores"] == psutil.cpu_count() and m.device["memory_total_gb"] > 0
    # CPU time at the clock's resolution, not in 10 ms ticks: a window of a few ms cannot show more cores than exist
    assert 0 < m.cpu_time_s and m.cpu_utilisation <= psutil.cpu_count() + 0.05
    available, why = rapl_available()
    assert (m.energy_j_per_image is not None) == available and m.energy_note == why


def test_measure_a_keras_model_the_same_way(pruned, data):
    _, model = pruned
    images, _ = split_arrays(data, "test")
    m = measure(model, images, n_images=10, warmup=2)
    assert m.runtime == "keras" and m.threads is None and m.median_ms > 0


def test_time_calls_times_each_call_after_an_untimed_warm_up():
    seen = []

    def call(x):  # the first call is slow, as a tf.function's tracing is: the warm-up absorbs it
        time.sleep(0.3 if not seen else 0.002)
        seen.append(x)

    entered = []

    class Window:  # what measure() puts around the timed calls: CPU time, memory, RAPL
        def __enter__(self):
            entered.append(len(seen))

        def __exit__(self, *exc):
            entered.append(len(seen))

    stats = time_calls(call, ["a", "b", "c", "d"], warmup=2, around=Window())
    assert isinstance(stats, LatencyStats)
    assert seen == ["a", "b", "a", "b", "c", "d"]  # warm-up cycles through the inputs, then each input once
    assert entered == [2, 6]  # the window covers the four timed calls and nothing else
    assert stats.n == 4 and stats.warmup == 2
    assert max(stats.latencies_ms) < 300  # the slow first call (300 ms) was not timed
    assert stats.q25_ms <= stats.median_ms <= stats.q75_ms <= stats.p90_ms
    assert stats.iqr_ms == pytest.approx(stats.q75_ms - stats.q25_ms)
    assert stats.wall_s * 1e3 >= sum(stats.latencies_ms)
    assert stats.summary().startswith(f"median {stats.median_ms:.2f} ms (IQR ")


@pytest.mark.parametrize("warmup", [0, -1])
def test_a_warm_up_below_one_call_is_refused_with_the_reason(warmup, exported, pruned, data):
    """measure(warmup=0) would time tf.function tracing as the first image (issue: it was accepted)."""
    images, _ = split_arrays(data, "test", limit=8)
    for target in (exported["fp32"], pruned[1]):
        with pytest.raises(ValueError, match=r"warmup must be an integer ≥ 1, got -?\d+: the first call"):
            measure(target, images, n_images=2, warmup=warmup)
    with pytest.raises(ValueError, match="traces its tf.function graph"):
        time_calls(len, [[1]], warmup=warmup)


def test_back_to_back_runs_each_image_through_every_model_in_rotated_order():
    seen = []

    def recorder(name, seconds):
        def call(x):
            time.sleep(seconds)
            seen.append((name, int(x[0, 0])))
        return call

    images = np.arange(40).reshape(20, 2)  # each input carries its own index
    calls = {"slow": recorder("slow", 0.004), "fast": recorder("fast", 0.0), "also fast": recorder("also fast", 0.0)}
    timing = time_back_to_back(calls, images, rounds=2, per_round=4, warmup=1, seed=3)
    assert timing.names == ("slow", "fast", "also fast") and len(timing.rounds) == 2
    timed = seen[3:15]  # after one warm-up call of each model, round 1's 4 images x 3 models
    first = [int(2 * i) for i in timing.images[0]]  # the inputs' first values
    assert [x for _, x in timed] == [x for x in first for _ in range(3)]  # image by image, back to back
    assert [name for name, _ in timed[::3]] == ["slow", "fast", "also fast", "slow"]  # who goes first rotates
    assert all(r[name].shape == (4,) for r in timing.rounds for name in calls)
    assert (timing.ratios("slow", "fast") > 2).all()  # 4 ms of sleep against nothing, in every round
    assert timing.ratios("slow", "fast", average="mean").shape == (2,) and timing.round_means("slow").min() >= 4
    assert timing.stats("slow").n == 8 and timing.stats("slow").median_ms >= 4
    again = time_back_to_back(calls, images, rounds=2, per_round=4, warmup=1, seed=3)
    assert all((a == b).all() for a, b in zip(again.images, timing.images))  # the seed fixes the images
    with pytest.raises(ValueError, match="no model named 'medium' was timed"):
        timing.ratios("medium", "fast")
    with pytest.raises(ValueError, match="at least one name"):
        time_back_to_back({}, images)
    with pytest.raises(ValueError, match="warmup must be an integer ≥ 1"):
        time_back_to_back(calls, images, warmup=0)


def test_measure_module_examples_run():
    for name in ("cdp_tutorial.edge.measure", "cdp_tutorial.edge.interleave"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name


def test_measurements_are_appended_to_the_edge_store(exported, data, tmp_path):
    images, _ = split_arrays(data, "test")
    store = EdgeStore(tmp_path)
    for seed in (0, 1):
        store.append(measure(exported["fp32"], images, n_images=5, warmup=1, seed=seed).record(seed=seed))
    records = store.records()
    assert [r["seed"] for r in records] == [0, 1]
    assert records[0]["device"]["logical_cores"] == psutil.cpu_count()
    assert sorted(os.listdir(tmp_path)) == ["edge.jsonl"]


def test_energy_model_conventions_and_pruning(pruned):
    baseline, model = pruned
    before, after = energy_model(baseline), energy_model(model)
    # the paper multiplies its "FLOPs" (MACs) by 2.3 pJ; Horowitz's per-operation reading, every
    # multiply and every add: FLOPs = 2 x MACs, so twice the paper's arithmetic
    assert before["macs"] == cdp.profile(baseline).totals.macs
    assert before["flops"] == before["flops_per_mac"] * before["macs"] == cdp.profile(baseline).totals.flops
    assert before["paper_compute_mj"] == pytest.approx(before["macs"] * 2.3e-9)
    assert before["horowitz_compute_mj"] == pytest.approx(2 * before["paper_compute_mj"])
    # the paper's reading charges 640 pJ per MB: arithmetic dominates; Horowitz's per access: memory
    assert before["paper_mj"] == pytest.approx(before["paper_compute_mj"], rel=1e-3)
    assert before["horowitz_mj"] > before["paper_mj"]
    assert after["paper_mj"] < before["paper_mj"] and after["horowitz_mj"] < before["horowitz_mj"]


def test_energy_module_examples_run():
    module = importlib.import_module("cdp_tutorial.edge.energy")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------ RAPL, on a fake powercap tree
def powercap(tmp_path, domains):
    """A fake /sys/class/powercap (no readable RAPL here): {folder: (name, energy_uj, max_energy_range_uj)}."""
    for folder, (name, energy, limit) in domains.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "name").write_text(name + "\n")
        (tmp_path / folder / "energy_uj").write_text(f"{energy}\n")
        (tmp_path / folder / "max_energy_range_uj").write_text(f"{limit}\n")
    return tmp_path


def set_energy(root, folder, microjoules):
    """Replace the counter in one step, as the kernel does (a polling thread never reads a half-written file)."""
    staged = root / folder / "energy_uj.new"
    staged.write_text(f"{microjoules}\n")
    os.replace(staged, root / folder / "energy_uj")


def test_rapl_counts_the_package_not_its_core_sub_domain_twice(tmp_path):
    """A fake powercap tree (no RAPL here): package 0 -> 100 uJ and its core sub-domain 0 -> 60 uJ."""
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**6), "intel-rapl:0:0": ("core", 0, 10**6),
                               "intel-rapl:1": ("psys", 0, 10**6)})  # psys: the whole platform, not a package
    meter = RaplMeter(root, poll_s=None).start()
    assert meter.available and "1 package domain(s)" in meter.note
    set_energy(root, "intel-rapl:0", 100)
    set_energy(root, "intel-rapl:0:0", 60)
    set_energy(root, "intel-rapl:1", 500)
    assert meter.stop() == pytest.approx(100e-6)  # not 160 (package + core), not 600 (+ psys)


def test_rapl_adds_only_the_wrapping_counters_own_range(tmp_path):
    """Two fake sockets (no RAPL here); socket 1 wraps at its range of 1000 uJ: 50 + 70 = 120 uJ, not 1,120."""
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 100, 1000), "intel-rapl:1": ("package-1", 960, 1000)})
    meter = RaplMeter(root, poll_s=None).start()
    set_energy(root, "intel-rapl:0", 150)
    set_energy(root, "intel-rapl:1", 30)
    assert meter.stop() == pytest.approx(120e-6)


def test_rapl_counts_repeated_wraps_by_reading_between_them(tmp_path):
    """A fake counter (no RAPL here) with a 1000 uJ range wraps three times; each read sees one wrap."""
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 900, 1000)})
    meter = RaplMeter(root, poll_s=None).start()
    for value in (400, 100, 800, 200):  # +500, +700, +700, +400: three wraps in all
        set_energy(root, "intel-rapl:0", value)
        meter.read_joules()  # what the background thread does every poll_s seconds
    assert meter.stop() == pytest.approx(2300e-6)
    assert "at most one wrap per counter" in RaplMeter(root, poll_s=None).note


def test_rapl_background_reads_catch_wraps_while_running(tmp_path):
    """The polling thread on a fake counter (no RAPL here): two wraps between start and stop are both counted."""
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 1000)})
    meter = RaplMeter(root, poll_s=0.01).start()
    assert "read every 0.01 s: right unless a package draws more than 0.1 W" in meter.note  # 1000 uJ / 0.01 s
    for value in (600, 100, 700, 200):  # +600, +500, +600, +500
        set_energy(root, "intel-rapl:0", value)
        time.sleep(0.1)  # ten polling intervals: the thread has read this value
    assert meter.stop() == pytest.approx(2200e-6)
    assert not meter._thread.is_alive()
    assert meter.stop() == pytest.approx(2200e-6)  # stopping twice changes nothing


def test_rapl_says_why_not_where_it_cannot_read(tmp_path):
    assert RaplMeter(tmp_path / "absent").stop() is None
    root = powercap(tmp_path, {"intel-rapl:0:0": ("core", 0, 1000)})
    meter = RaplMeter(root).start()
    assert meter.stop() is None and "no intel-rapl package domain" in meter.note
    available, why = rapl_available(root)
    assert not available and str(root) in why


def test_missing_and_existing_files_are_refused(exported, pruned, tmp_path):
    with pytest.raises(FileNotFoundError, match="no LiteRT file"):
        load_interpreter(tmp_path / "absent.tflite")
    with pytest.raises(FileNotFoundError):
        measure(tmp_path / "absent.tflite", np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_litert(pruned[1], exported["fp32"], "fp32")


def test_bad_representative_data_is_refused_before_anything_is_written(pruned, tmp_path):
    _, model = pruned
    target = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"shaped \(N, 32, 32, 3\)"):
        export_litert(model, target, "full_int8", representative_images=np.zeros((8, 28, 28, 1)))
    with pytest.raises(ValueError, match="needs representative_images"):
        export_litert(model, target, "full_int8")
    with pytest.raises(ValueError, match="precision must be one of|precision"):
        export_litert(model, target, "int4")
    with pytest.raises(ValueError, match="end with .tflite"):
        export_litert(model, tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


def test_a_model_litert_cannot_run_raises_and_leaves_nothing(tmp_path):
    inputs = keras.Input((8, 8, 3))
    # string ops convert only as TensorFlow "Select" ops, which the LiteRT interpreter cannot run
    as_text_and_back = keras.layers.Lambda(lambda t: tf.strings.to_number(tf.strings.as_string(t)),
                                           output_shape=(8, 8, 3))
    x = as_text_and_back(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ConversionError, match="LiteRT cannot run"):
        export_litert(model, tmp_path / "strings.tflite")
    assert os.listdir(tmp_path) == []
