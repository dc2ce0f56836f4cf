"""Device benchmarks: the tegrastats parser on recorded Jetson output, the sampler, the CPU path.

No Jetson is reachable where these tests run. The parser is tested on tegrastats lines recorded on
real boards and published (tests/data/tegrastats/, each file names its source); the background
sampler runs against a stand-in ``tegrastats`` executable put on PATH, which prints recorded lines
at the requested interval. The CPU path (training, timing, the results file) runs for real.
"""

import inspect
import json
import os
import re
import stat
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import psutil
import pytest

import cdp_tutorial as cdp
from cdp_tutorial.devices import (TegrastatsSampler, integrate_power, iteration_limited_plan, load_results,
                                  open_power_meter, parse_tegrastats, run_device_benchmark, table6)
from cdp_tutorial.devices.bench import table6_protocol_label
from cdp_tutorial.devices.record import (clock_warning, clocks_state, device_record, parse_nv_tegra_release,
                                         parse_nvpmodel_query)

RECORDED = Path(__file__).parent / "data" / "tegrastats"


def recorded_line(name):
    lines = [l for l in (RECORDED / name).read_text().splitlines() if l.strip() and not l.startswith("#")]
    return lines[0]


# ------------------------------------------------------------------ parser, per Jetson generation
@pytest.mark.parametrize("name, input_rail, input_mw, rails", [
    ("nano_jetpack461.txt", "POM_5V_IN", 1750,
     {"POM_5V_IN": (1750, 1628), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (366, 406)}),
    ("nano_jetson_stats.txt", "POM_5V_IN", 4520, {"POM_5V_IN": (4520, 4680), "POM_5V_CPU": (1078, 1205)}),
    ("tx2.txt", "VDD_IN", 3140, {"VDD_IN": (3140, 3208), "VDD_SYS_GPU": (153, 158), "VDD_SYS_DDR": (557, 601)}),
    ("xavier_nx_jetpack411.txt", "VDD_IN", 6140, {"VDD_IN": (6140, 5510), "VDD_CPU_GPU_CV": (2706, 2119),
                                                  "VDD_SOC": (1074, 1051)}),
    ("xavier_nx_jetpack512.txt", "VDD_IN", 2763, {"VDD_IN": (2763, 2846), "VDD_CPU_GPU_CV": (650, 670),
                                                  "VDD_SOC": (650, 711)}),
])
def test_the_input_rail_is_the_module_power_and_is_never_added_to_the_others(name, input_rail, input_mw, rails):
    sample = parse_tegrastats(recorded_line(name))
    assert sample["input_mw"] == input_mw
    assert sample["input_source"] == f"{input_rail} (input rail)"
    for rail, (now, average) in rails.items():
        assert (sample["rails"][rail]["now_mw"], sample["rails"][rail]["average_mw"]) == (now, average)


def test_a_board_without_input_rail_sums_its_rails_and_says_which():
    sample = parse_tegrastats(recorded_line("agx_orin.txt"))
    assert sample["input_mw"] == 3150 + 14312 + 4968 + 1091
    assert sample["input_source"].startswith("sum of rails VDDQ_VDD2_1V8AO+VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0")
    assert sample["timestamp"] == "11-21-2025 08:49:48"


def test_ram_cpu_and_gpu_utilisation_are_read():
    nx = parse_tegrastats(recorded_line("xavier_nx_jetpack411.txt"))
    assert (nx["ram_used_mb"], nx["ram_total_mb"]) == (5246, 7771)
    assert nx["cpu_percent"] == [47, 23, 32, 22, 31, 96]
    assert nx["cpu_mean_percent"] == pytest.approx((47 + 23 + 32 + 22 + 31 + 96) / 6)
    assert parse_tegrastats(recorded_line("agx_orin.txt"))["gpu_percent"] == 14
    assert parse_tegrastats("RAM 1/2MB CPU [10%@1190,off]")["cpu_percent"] == [10, None]


def test_a_line_without_rails_parses_and_says_why_there_is_no_power():
    sample = parse_tegrastats("RAM 1923/3964MB (lfb 2x2MB) CPU [5%@1224,4%@1224] GR3D_FREQ 0%@76")
    assert sample["input_mw"] is None and "root" in sample["input_source"]


@pytest.mark.parametrize("line", ["", "hello world", "CPU [5%@1224] VDD_IN 5000mW/5000mW",
                                  "RAM 1/2MB VDD_IN five/5000", "RAM 1/2MB CPU [x@1224] VDD_IN 1/1"])
def test_malformed_lines_raise_an_error_that_quotes_them(line):
    with pytest.raises(ValueError, match="tegrastats") as error:
        parse_tegrastats(line)
    assert repr(line) in str(error.value)


NANO = "RAM 1923/3964MB CPU [5%@1224,off] GR3D_FREQ 0%@76 POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406"


@pytest.mark.parametrize("text, what", [
    (NANO + "\n" + NANO, "2 lines, not one"),                     # two lines pasted with their line break
    (NANO + " " + NANO, "2 lines, not one"),                       # ... or with a space
    (NANO + NANO, "2 lines, not one"),                             # ... or glued: '...366/406RAM 1923/...'
    (NANO + " POM_5V_IN 9999/9999", "rail POM_5V_IN appears twice"),
    ("RAM 1923/3964MB CPU [5%@1224,4%@12", "CPU block is cut off"),
    ("RAM 1923/3964MB CPU [] POM_5V_IN 1750/1628", "lists no core"),
    ("RAM 9000/100MB CPU [5%@1224]", "RAM 9000/100MB is impossible"),
    ("RAM 1923/3964MB CPU [250%@1224,5%@1224]", "a core's load is at most 100%"),
    ("RAM 1923/3964MB CPU [5%@1224] GR3D_FREQ 900%@76", "GPU load 900% is above 100%"),
])
def test_a_line_that_cannot_be_one_real_tegrastats_line_is_refused(text, what):
    """Each of these used to parse: merged lines, the last of two rails, [] for a cut-off block, 9 GB of 100 MB."""
    with pytest.raises(ValueError, match=re.escape(what)) as error:
        parse_tegrastats(text)
    assert repr(text) in str(error.value)  # the message quotes what it refused


def test_integrate_power_refuses_nan_samples_and_unsorted_times():
    with pytest.raises(ValueError, match=r"power_mw\[1\] is nan: every sample must be a finite number"):
        integrate_power([0, 1, 2], [1000, float("nan"), 1000], 0, 2)  # used to return nan joules
    with pytest.raises(ValueError, match=r"times_s\[2\] is inf"):
        integrate_power([0, 1, float("inf")], [1000, 1000, 1000], 0, 1)
    with pytest.raises(ValueError, match=r"times_s must increase: sample 2 \(t = 1.0\) does not come after "
                                         r"sample 1 \(t = 2.0\); sort the samples"):
        integrate_power([0, 2, 1, 3], [1000] * 4, 0, 3)
    with pytest.raises(ValueError, match="one length"):
        integrate_power([0, 1, 2], [1000, 1000], 0, 2)


# ------------------------------------------------------------------ sampler, against a stand-in
@pytest.fixture
def fake_tegrastats(tmp_path, monkeypatch):
    """A stand-in ``tegrastats`` on PATH (no Jetson here): prints recorded lines every --interval ms."""
    lines = tmp_path / "lines.txt"
    script = tmp_path / "bin" / "tegrastats"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, time
        interval = int(sys.argv[sys.argv.index("--interval") + 1]) / 1000
        lines = open({str(lines)!r}).read().splitlines()
        while True:
            for line in lines:
                print(line, flush=True)
                time.sleep(interval)
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return lines


def test_sampler_integrates_the_input_rail_over_a_measured_interval(fake_tegrastats):
    # an Orin-format line at a constant 5 W: 0.6 s of it is 3 J, whatever the sampling phase
    line = recorded_line("xavier_nx_jetpack512.txt").replace("VDD_IN 2763mW/2846mW", "VDD_IN 5000mW/5000mW")
    fake_tegrastats.write_text(line + "\n")
    with TegrastatsSampler(interval_ms=50) as sampler:
        assert sampler.wait_for_samples(2)
        start = time.monotonic()
        time.sleep(0.6)
        end = time.monotonic()
        assert sampler.wait_for_samples(len(sampler.samples) + 2)
        joules, source = sampler.energy_j(start, end)
    assert joules == pytest.approx(5.0 * (end - start), rel=1e-6)
    assert source == "tegrastats VDD_IN (input rail)"


def test_sampler_keeps_malformed_lines_as_errors_not_zeros(fake_tegrastats):
    fake_tegrastats.write_text(recorded_line("nano_jetpack461.txt") + "\nthis is not tegrastats\n")
    with TegrastatsSampler(interval_ms=20) as sampler:
        assert sampler.wait_for_samples(3)
    assert all(s["input_mw"] == 1750 for _, s in sampler.samples)
    assert sampler.errors and "this is not tegrastats" in sampler.errors[0]


def tegrastats_processes(fake_tegrastats):
    return [p for p in psutil.process_iter(["cmdline"]) if str(fake_tegrastats.parent) in " ".join(p.info["cmdline"] or [])]


def test_auto_power_meter_uses_tegrastats_when_it_is_on_path(fake_tegrastats):
    fake_tegrastats.write_text(recorded_line("nano_jetpack461.txt") + "\n")
    meter = open_power_meter("auto", interval_ms=20)
    assert not meter.started and not tegrastats_processes(fake_tegrastats)  # the factory returns it unstarted
    with meter:
        meter.start()  # idempotent: still one tegrastats
        assert len(tegrastats_processes(fake_tegrastats)) == 1
        before = meter.read()
        time.sleep(0.2)
        energy = meter.measure(before, meter.read())
    assert energy.source.startswith("tegrastats POM_5V_IN")
    assert energy.mean_watts == pytest.approx(1.75)
    assert not tegrastats_processes(fake_tegrastats)  # every tegrastats it started has stopped


class FakeJtop:
    """Stands in for jetson-stats' ``jtop`` (no Jetson here): a connection with ``power['tot']`` in mW."""

    instances = []
    total_mw = 4200.0

    def __init__(self):
        self.open = False
        FakeJtop.instances.append(self)

    def start(self):
        assert not self.open, "a jtop connection started twice"
        self.open = True

    def close(self):
        self.open = False

    @property
    def power(self):
        assert self.open, "jtop read while closed"
        if self.total_mw is None:
            return {"rail": {}}  # a board whose jtop reports no total
        return {"tot": {"power": self.total_mw, "avg": self.total_mw}}


@pytest.fixture
def fake_jtop(monkeypatch):
    """A fake ``jtop`` module (jetson-stats cannot run here), and no tegrastats on PATH."""
    module = types.ModuleType("jtop")
    module.jtop = FakeJtop
    monkeypatch.setitem(sys.modules, "jtop", module)
    monkeypatch.setattr(FakeJtop, "instances", [])
    monkeypatch.setattr(FakeJtop, "total_mw", 4200.0)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    return FakeJtop


def polling_threads():
    return [t for t in threading.enumerate() if t.name.endswith("-poll") and t.is_alive()]


def test_jtop_meter_starts_once_in_a_with_block_and_leaves_nothing_open(fake_jtop):
    meter = open_power_meter("jtop", interval_ms=20)
    assert not meter.started and not any(j.open for j in fake_jtop.instances)  # probed, then closed again
    with meter:
        meter.start()  # a second start does nothing (it used to start the polling thread twice)
        before = meter.read()
        time.sleep(0.2)
        energy = meter.measure(before, meter.read())
    assert energy.mean_watts == pytest.approx(4.2) and energy.source.startswith("jtop")
    assert not any(j.open for j in fake_jtop.instances) and not polling_threads()
    with meter:  # a stopped meter starts again, with a new connection
        assert sum(j.open for j in fake_jtop.instances) == 1
    assert not any(j.open for j in fake_jtop.instances)


def test_an_error_inside_the_block_still_closes_jtop_and_stops_polling(fake_jtop):
    with pytest.raises(ZeroDivisionError):
        with open_power_meter("jtop", interval_ms=20):
            1 / 0
    assert not any(j.open for j in fake_jtop.instances) and not polling_threads()


def test_a_jtop_without_power_is_refused_and_closed(fake_jtop):
    fake_jtop.total_mw = None
    meter = open_power_meter("jtop", interval_ms=20)
    energy = meter.measure(meter.read(), meter.read())
    assert energy.joules is None and "jtop: KeyError" in energy.why_not
    assert fake_jtop.instances and not any(j.open for j in fake_jtop.instances)


def test_auto_passes_over_a_tegrastats_without_power_rails(fake_tegrastats, fake_jtop, monkeypatch):
    """The Nano's recorded line with its rails cut: what tegrastats prints when not run as root."""
    line = recorded_line("nano_jetpack461.txt")
    fake_tegrastats.write_text(line[:line.index(" POM_5V_IN")] + "\n")
    monkeypatch.setenv("PATH", f"{fake_tegrastats.parent / 'bin'}{os.pathsep}{os.environ['PATH']}")
    meter = open_power_meter("auto", interval_ms=20)
    assert meter.source.startswith("jtop")  # the next source that gives power
    assert "tegrastats: no power rails" in meter.passed_over[0]
    assert not tegrastats_processes(fake_tegrastats) and not any(j.open for j in fake_jtop.instances)


def test_auto_says_why_when_no_source_gives_power(fake_tegrastats, monkeypatch):
    line = recorded_line("nano_jetpack461.txt")
    fake_tegrastats.write_text(line[:line.index(" POM_5V_IN")] + "\n")
    monkeypatch.setitem(sys.modules, "jtop", None)  # jetson-stats not installed
    meter = open_power_meter("auto", interval_ms=20)
    energy = meter.measure(meter.read(), meter.read())
    assert energy.joules is None
    assert "tegrastats: no power rails" in energy.why_not and "jtop: jtop not installed" in energy.why_not


def test_integrate_power_refuses_an_interval_the_samples_do_not_cover():
    assert integrate_power([0, 1, 2], [1000, 3000, 1000], 0, 2) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="cover"):
        integrate_power([0.5, 1], [1000, 1000], 0, 1)


# ------------------------------------------------------------------ device record
def test_device_record_describes_this_machine():
    record = device_record()
    assert record["usable_cores"] >= 1 and record["memory_total_gb"] > 0
    assert record["versions"]["keras"].startswith("3.")
    assert record["jetson"] is None  # no /etc/nv_tegra_release here
    assert clock_warning({**record, "clocks": {"fixed": False, "how": "governor ondemand"}}).startswith("warning")
    assert clock_warning({**record, "clocks": {"fixed": True, "how": "pinned"}}) is None


def test_jetson_release_and_power_mode_are_read_from_their_files(tmp_path):
    assert parse_nv_tegra_release("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref") == "R32.7.1"
    assert parse_nvpmodel_query("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    with pytest.raises(ValueError, match="nv_tegra_release"):
        parse_nv_tegra_release("Ubuntu 22.04")
    core = tmp_path / "cpu0" / "cpufreq"
    core.mkdir(parents=True)
    for name, value in (("scaling_min_freq", "1479000"), ("scaling_max_freq", "1479000"),
                        ("scaling_governor", "schedutil")):
        (core / name).write_text(value + "\n")
    assert clocks_state(tmp_path)["fixed"] is True  # what jetson_clocks does: min = max
    (core / "scaling_min_freq").write_text("102000\n")
    assert clocks_state(tmp_path)["fixed"] is False


# ------------------------------------------------------------------ Table 6 protocol, for real on this CPU
def test_iteration_limited_plan_is_algorithm_1_stopped_after_n_iterations():
    model = cdp.models.vgg16()
    plan = iteration_limited_plan(model, "FA", 50, seed=3)
    assert len(plan.history) == 50
    same = cdp.plan_pruning(model, "FA", budget=plan.final.macs, seed=3)  # the loop stopped at that budget
    assert same.widths == plan.widths and len(same.history) == 50


def test_bench_device_writes_table6_records_with_the_device(tmp_path, fake_jtop):
    """The real training and timing on this CPU, with power from a fake jtop (no Jetson here)."""
    store = tmp_path / "results.jsonl"
    records = run_device_benchmark(models=("alexnet",), modes=("FA",), dataset="fixture", train_size=20,
                                   test_size=10, width_multiplier=0.125, iterations=10, latency_runs=3,
                                   power="jtop", interval_ms=20, store=store, litert=False, say=lambda *a: None)
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert [r["mode"] for r in lines] == ["baseline", "flops"] == [r["mode"] for r in records]
    for record in lines:
        assert record["epoch_time_s"] > 0 and record["keras_latency_ms"] > 0
        assert record["images_per_epoch"] == 20 and record["batch_size"] == 5
        assert record["device"]["usable_cores"] >= 1 and record["device"]["gpus"] == []
        # one jtop connection for the whole benchmark, started once (it used to be started twice and crash)
        assert record["mean_power_w"] == pytest.approx(4.2) and record["power_source"].startswith("jtop")
        assert record["litert_latency_ms"] is None and "switched off" in record["litert_why_not"]
        assert record["label"].startswith("not the paper's Table 6 protocol")
        assert record["label"].endswith("(step p = 0.1: the paper gives none)")
    assert lines[1]["macs"] < lines[0]["macs"]  # planned on the full-size model
    assert not any(j.open for j in fake_jtop.instances) and not polling_threads()
    table = table6(load_results(store))
    assert list(table["mode"]) == ["baseline", "flops"] and table["speed-up"].iloc[0] == 1.0


def test_table6_keeps_the_papers_memory_column_and_summarises_repeated_runs(tmp_path):
    """On the committed CPU file (real records), then with a second run of each row appended."""
    from cdp_tutorial.data import repository_file

    committed = repository_file("data/devices/cpu-amd-epyc-2cores-quick.jsonl")
    records = [json.loads(line) for line in committed.read_text().splitlines()]
    once = table6(load_results(committed))
    assert list(once["memory (MiB)"]) == [round(r["memory_bytes"] / 2**20, 2) for r in
                                          sorted(records, key=lambda r: (r["model"], ["baseline", "params", "flops",
                                                                                      "memory"].index(r["mode"])))]
    assert (once["runs"] == 1).all() and once["speed-up low"].isna().all()  # one run shows no spread
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text("".join(json.dumps(r) + "\n" for r in records)
                        + "".join(json.dumps({**r, "steady_epoch_time_s": 2 * r["steady_epoch_time_s"]}) + "\n"
                                  for r in records))
    twice = table6(load_results(repeated)).set_index(["model", "mode"])
    base = [r for r in records if (r["model"], r["mode"]) == ("vgg16", "baseline")][0]["steady_epoch_time_s"]
    flops = [r for r in records if (r["model"], r["mode"]) == ("vgg16", "flops")][0]["steady_epoch_time_s"]
    row = twice.loc[("vgg16", "flops")]
    assert row["runs"] == 2 and row["steady epoch (s)"] == round(1.5 * flops, 1)  # the median of the two runs
    assert row["speed-up"] == pytest.approx(base / flops, abs=0.01)  # medians: both doubled in one run
    assert row["speed-up low"] == pytest.approx(base / (2 * flops), abs=0.01)  # fastest baseline / slowest mode
    assert row["speed-up high"] == pytest.approx(2 * base / flops, abs=0.01)


def test_table6_ideal_speed_up_is_the_trained_models_and_old_labels_join_new_runs(tmp_path):
    """On the committed CPU records (real, trained at x0.25 width and labelled before the label gained the step)."""
    from cdp_tutorial.data import repository_file

    committed = repository_file("data/devices/cpu-amd-epyc-2cores-quick.jsonl")
    records = [json.loads(line) for line in committed.read_text().splitlines()]
    assert all("step p" not in r["label"] for r in records)  # written by an older wording
    table = table6(load_results(committed), rounded=False).set_index(["model", "mode"])
    by_row = {(r["model"], r["mode"]): r for r in records}
    base, memory = by_row[("alexnet", "baseline")], by_row[("alexnet", "memory")]
    row = table.loc[("alexnet", "memory")]
    # the models timed are the trained (narrow) ones: their MACs, not the full-size plan's, set the ideal
    assert row["ideal speed-up"] == pytest.approx(base["trained_macs"] / memory["trained_macs"])
    assert row["trained MAC reduction (%)"] == 80.9 and row["MAC reduction (%)"] == 84.4
    assert row["steady epoch (s)"] == memory["steady_epoch_time_s"]  # rounded=False keeps the measured value
    assert table["protocol"].str.endswith("(step p = 0.1: the paper gives none)").all()
    # a new run of the same settings, labelled as the benchmark labels it now, joins the old row
    new = {**memory, "label": table6_protocol_label({k: memory[k] for k in (
        "model", "dataset", "train_size", "width_multiplier", "epochs", "batch_size", "iterations", "step")})}
    both = tmp_path / "both.jsonl"
    both.write_text("".join(json.dumps(r) + "\n" for r in [*records, new]))
    joined = table6(load_results(both)).set_index(["model", "mode"])
    assert len(joined) == len(table) and joined.loc[("alexnet", "memory"), "runs"] == 2


def test_the_table6_label_states_the_step_and_does_not_call_it_the_papers():
    paper = {"model": "alexnet", "dataset": "cifar100", "train_size": None, "width_multiplier": 1,
             "epochs": 1, "batch_size": 5, "iterations": 50}
    # the paper gives no step: any step follows its protocol, and the label says which one was used
    for step in (0.1, 0.05):
        assert table6_protocol_label({**paper, "step": step}) == (
            "Table 6 protocol: 1 epoch at batch 5, pruned up to 50 iterations per mode "
            f"(step p = {step:g}: the paper gives none)")
    assert table6_protocol_label({**paper, "step": 0.1, "epochs": 2}).startswith(
        "not the paper's Table 6 protocol: epochs 2 (step p = 0.1")


def test_one_of_each_device_record_label_and_baseline_name():
    """Device benchmarks use the results' BASELINE, one device_record, and a label with its own name."""
    import importlib

    from cdp_tutorial import edge, results
    from cdp_tutorial.devices import bench

    assert "BASELINE =" not in inspect.getsource(bench) and bench.BASELINE is results.BASELINE
    assert not hasattr(bench, "protocol_label") and not hasattr(bench, "PAPER_SETTINGS")
    assert not hasattr(edge, "device_record")
    assert not hasattr(importlib.import_module("cdp_tutorial.edge.measure"), "device_record")


def test_power_tegrastats_and_label_examples_run():
    import doctest
    import importlib

    for name in ("cdp_tutorial.devices.power", "cdp_tutorial.devices.tegrastats"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted > 0 and result.failed == 0, name
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(table6_protocol_label):
        runner.run(test)
    assert runner.summarize(verbose=False) == (0, 1)


def test_bench_device_rejects_bad_settings_before_training():
    with pytest.raises(ValueError, match="unknown model"):
        run_device_benchmark(models=("vgg61",))
    with pytest.raises(ValueError, match="batch_size"):
        run_device_benchmark(models=("vgg16",), batch_size=0)
