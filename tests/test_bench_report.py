"""``nncore bench``: provider selection, the tables, the scaling sweeps, the charts, and one real run."""

from __future__ import annotations

import json

import pytest

from nncore import bench
from nncore.cli import main


def _bench(provider, op, shape, median, *, variant=None, params=None, **rates):
    info = {"provider": provider, "op": op, "shape": shape, "params": params or {}, **rates}
    if variant:
        info["variant"] = variant
    return {"name": f"test[{shape}-{provider}]", "stats": {"median": median}, "extra_info": info}


def _results(benchmarks):
    return {"preset": "quick", "versions": {"numpy": "2.0"}, "machine_info": {"cpu": {"brand_raw": "CPU", "count": 2}},
            "floors": {"copy_Bps": 20e9, "copy_all_cores_Bps": 30e9, "sgemm_flops": 1e11, "dgemm_flops": 5e10},
            "skipped": {"jax-cpu": "JAX not installed"}, "benchmarks": benchmarks}


def test_parse_providers():
    assert bench.parse_providers("all") == list(bench.PROVIDERS)
    assert bench.parse_providers("cpu") == list(bench.CPU_PROVIDERS)
    assert bench.parse_providers("gpu") == list(bench.GPU_PROVIDERS)
    assert bench.parse_providers("torch-cpu, nncore-cpu") == ["nncore-cpu", "torch-cpu"]
    assert bench.parse_providers("nncore-cpu,") == ["nncore-cpu"]  # a stray comma selects nothing more
    with pytest.raises(ValueError, match="unknown provider 'tensorflow'"):
        bench.parse_providers("nncore-cpu,tensorflow")


def test_tables_compare_with_the_fastest_torch_on_the_same_device():
    rows = [
        _bench("nncore-cpu", "adam update f32", "16M", 0.010, GBps=44.8, fraction_of_floor=0.9),
        _bench("torch-cpu", "adam update f32", "16M", 0.030, variant="foreach", GBps=15.0),
        _bench("torch-cpu", "adam update f32", "16M", 0.020, variant="fused", GBps=22.4),
        _bench("nncore-cuda", "adam update f32", "16M", 0.001, GBps=448.0),
        _bench("torch-cuda", "adam update f32", "16M", 0.004),
        _bench("numpy", "matmul f32", "512x512x512", 0.002, GFLOPs=134.2, fraction_of_floor=0.5),
    ]
    text = bench.format_tables(_results(rows))
    lines = text.splitlines()
    adam = lines.index("### adam update f32 16M")
    table = lines[adam + 4:adam + 9]
    # fastest first; nncore-cpu against fused torch (0.020 / 0.010), nncore-cuda against torch-cuda (0.004 / 0.001)
    assert table[0] == "| nncore-cuda | 1.00 ms | 448.0 GB/s |  | 4.00x |"
    assert table[1] == "| torch-cuda | 4.00 ms |  |  |  |"
    assert table[2] == "| nncore-cpu | 10.00 ms | 44.8 GB/s | 90% | 2.00x |"
    assert table[3].startswith("| torch-cpu (fused) | 20.00 ms |")
    assert table[4].startswith("| torch-cpu (foreach) | 30.00 ms |")
    matmul = lines.index("### matmul f32 512x512x512")
    assert lines[matmul + 4] == "| numpy | 2.00 ms | 134.2 GFLOP/s | 50% |  |"
    assert "Not run: jax-cpu (JAX not installed)" in text
    assert "one NumPy copy 20.0 GB/s" in text


def test_groups_sort_shapes_numerically():
    rows = [_bench("numpy", "softmax f32", s, 1e-3) for s in ("256x16384", "256x2048", "256x256")]
    assert [shape for _, shape in bench.groups(_results(rows))] == ["256x256", "256x2048", "256x16384"]
    rows = [_bench("numpy", "relu forward f32", s, 1e-3) for s in ("16M", "2M", "64K")]
    assert [shape for _, shape in bench.groups(_results(rows))] == ["64K", "2M", "16M"]


def _sweep_rows():
    rows = []
    for c in (256, 2048, 16384, 131072):
        for p, t in (("nncore-cpu", 1e-9), ("torch-cpu", 4e-9)):
            rows.append(_bench(p, "softmax_xent f32", f"256x{c}", t * 256 * c, params={"N": 256, "C": c},
                               GBps=8 * 256 * c / (t * 256 * c) / 1e9))
    # two points at another N: not a sweep (fewer than 3 values along N at a fixed C)
    rows.append(_bench("nncore-cpu", "softmax_xent f32", "4096x131072", 0.5, params={"N": 4096, "C": 131072}))
    rows.append(_bench("nncore-cpu", "relu forward f32", "16M", 1e-3))  # no params: no sweep
    return rows


def test_scaling_series_finds_the_sweeps():
    series = bench.scaling_series(_results(_sweep_rows()))
    assert len(series) == 1
    op, key, fixed, lines = series[0]
    assert (op, key, fixed) == ("softmax_xent f32", "C", {"N": 256})
    assert sorted(lines) == ["nncore-cpu", "torch-cpu"]
    assert [x for x, _ in lines["nncore-cpu"]] == [256, 2048, 16384, 131072]


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_charts_are_written(tmp_path):
    paths = bench.write_charts(_results(_sweep_rows()), tmp_path)
    assert [p.name for p in paths] == ["times.png", "scaling-softmax-xent-f32-c.png"]
    assert all(_is_png(p) and p.stat().st_size > 10_000 for p in paths)


def test_cli_report_rerenders_a_saved_run(tmp_path, capsys):
    saved = tmp_path / "bench.json"
    saved.write_text(json.dumps(_results(_sweep_rows())))
    assert main(["bench", "--report", str(saved), "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "### softmax_xent f32 256x131072" in out
    assert (tmp_path / "again" / "report.md").read_text().startswith("Machine: CPU, 2 logical CPUs")
    assert _is_png(tmp_path / "again" / "times.png")


@pytest.mark.parametrize("argv, message", [
    (["bench", "--providers", "cpu,tpu"], "--providers: unknown provider 'tpu'"),
    (["bench", "--suites", "/nonexistent"], "no benchmark suites found"),
    (["bench", "--report", "/nonexistent.json"], "--report /nonexistent.json"),
    (["bench", "--report", "x.json", "--full"], "--report re-renders a saved run"),
    (["bench", "--full", "--preset", "tiny"], "give --full or --preset, not both"),
])
def test_cli_bad_options(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nncore: error: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_cli_runs_the_suites(tmp_path, monkeypatch, capsys):
    """A real, timed run of the cross-entropy benchmark for two providers, each in its own process, from
    another folder than the repository's, with a relative --out."""
    monkeypatch.chdir(tmp_path)
    code = main(["bench", "--preset", "tiny", "--providers", "nncore-cpu,numpy", "-k",
                 "test_softmax_xent and not float64 and not allocating", "--out", "run", "--no-progress"])
    out = tmp_path / "run"
    logs = "".join(p.read_text()[-3000:] for p in out.glob("log-*.txt"))
    assert code == 0, logs
    results = json.loads((out / "bench.json").read_text())
    ran = sorted((b["extra_info"]["provider"], b["extra_info"]["shape"]) for b in results["benchmarks"])
    assert ran == sorted((p, s) for p in ("nncore-cpu", "numpy") for s in ("3x37", "1x5"))
    for b in results["benchmarks"]:
        n, c = map(int, b["extra_info"]["shape"].split("x"))
        assert b["stats"]["median"] > 0 and "GBps" in b["extra_info"]
        assert b["extra_info"]["bytes"] == 2 * n * c * 4  # float32 logits read, gradient written
    assert results["floors"]["copy_Bps"] > 0
    assert "### softmax_xent f32 3x37" in capsys.readouterr().out
    assert _is_png(out / "times.png")


@pytest.mark.slow
def test_cli_provider_with_nothing_selected(tmp_path, capsys):
    """-k selects a benchmark only nncore-cpu has: numpy's process runs nothing, which is not an error."""
    out = tmp_path / "run"
    code = main(["bench", "--preset", "tiny", "--providers", "nncore-cpu,numpy", "-k", "allocating",
                 "--out", str(out), "--no-progress", "--no-charts"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "bench.json").read_text())
    assert [(b["extra_info"]["provider"], b["extra_info"]["variant"]) for b in results["benchmarks"]] == [
        ("nncore-cpu", "allocating")]


def test_merge_keeps_the_median_run_of_repeated_benchmarks(tmp_path):
    paths = []
    for run, (t_nncore, t_torch) in enumerate([(3e-3, 9e-3), (1e-3, 8e-3), (2e-3, 7e-3)]):
        rows = [_bench(p, "train-step f32", "b256", t) for p, t in (("nncore-cpu", t_nncore), ("torch-cpu", t_torch))]
        for r in rows:
            r["fullname"] = r["name"]
        paths.append(tmp_path / f"raw-{run}.json")
        paths[-1].write_text(json.dumps({"machine_info": {}, "benchmarks": rows}))
    merged = bench.merge(paths, preset="quick", repeat=3)
    kept = {b["extra_info"]["provider"]: b for b in merged["benchmarks"]}
    assert kept["nncore-cpu"]["stats"]["median"] == 2e-3 and kept["torch-cpu"]["stats"]["median"] == 8e-3
    assert kept["nncore-cpu"]["extra_info"]["runs_s"] == [1e-3, 2e-3, 3e-3]
    text = bench.format_tables(merged)
    assert "| nncore-cpu | 2.00 ms (1.00 ms - 3.00 ms) |  |  | 4.00x |" in text
    assert "Each provider ran 3 times" in text
