"""``nncore bench``: run the benchmark suites of bench/, print one table per op, write the JSON and charts.

    nncore bench                       # quick preset, every provider that can run here, ~2.5 min on 2 cores
    nncore bench --full                # every shape: the earlier issues' targets and the whole scaling sweeps
    nncore bench --providers cpu -k softmax --out my-run
    nncore bench --report my-run/bench.json        # tables and charts again from a saved run, no timing

Each provider runs in a process of its own (``pytest bench --bench-providers=P``), one after another, so the
thread pools of one library (torch's OpenMP workers, XLA's, Numba's) never spin on the cores another is
timed on; the machine's floors (copy bandwidth, BLAS rate) are measured once by the first process and
shared with the others through a file, so every ratio in the report comes from one run. The per-provider
pytest-benchmark files are merged into ``bench.json``; ``report.md`` holds the tables printed on the
terminal; ``times.png`` has the median time of every provider per op, and ``scaling-*.png`` the scaling
curves (time and throughput against C, batch size or width) on log axes.

The suites live in the repository's bench/ folder (beside this package in a clone): the report works on
an installed wheel too, but running needs the clone.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict
from importlib import metadata
from pathlib import Path

CPU_PROVIDERS = ("nncore-cpu", "numpy", "torch-cpu", "jax-cpu")
GPU_PROVIDERS = ("nncore-cuda", "cupy", "torch-cuda")
PROVIDERS = CPU_PROVIDERS + GPU_PROVIDERS
TORCH = {"cpu": "torch-cpu", "cuda": "torch-cuda"}  # the "vs PyTorch" column divides by these, per device
PACKAGES = ("numpy", "numba", "llvmlite", "numba-cuda", "scipy", "torch", "jax", "jaxlib", "cupy-cuda12x",
            "cupy-cuda13x", "pytest-benchmark")
_RESULT = re.compile(r"^(?P<file>[\w/.-]+\.py)::\S+ (?P<outcome>PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)")
_COLLECTED = re.compile(r"collected (\d+) items?(?: / \d+ deselected / (\d+) selected)?")


class BenchError(Exception):
    """The suites could not be found (the CLI exits 2) or a benchmark failed (it exits 1); one line."""


# ---- running ------------------------------------------------------------------------------------------


def parse_providers(text):
    """"nncore-cpu,torch-cpu" / "cpu" / "gpu" / "all" -> the provider names, in the canonical order."""
    names = set()
    words = [w.strip() for w in text.split(",") if w.strip()] or ["all"]
    for word in words:
        if word == "all":
            names.update(PROVIDERS)
        elif word == "cpu":
            names.update(CPU_PROVIDERS)
        elif word == "gpu":
            names.update(GPU_PROVIDERS)
        elif word in PROVIDERS:
            names.add(word)
        else:
            raise ValueError(f"unknown provider {word!r}: choose from {', '.join(PROVIDERS)}, cpu, gpu, all")
    return [p for p in PROVIDERS if p in names]


def suites_dir(path=None) -> Path:
    """The bench/ folder to run: ``path`` if given, else the one beside this package, else ./bench."""
    candidates = [Path(path)] if path else [Path(__file__).resolve().parent.parent / "bench", Path.cwd() / "bench"]
    for c in candidates:
        if (c / "conftest.py").is_file() and (c / "providers.py").is_file():
            return c.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise BenchError(f"no benchmark suites found (looked in {where}); run from a clone of the nncore repository "
                     "or pass --suites PATH/TO/bench")


def _provider_missing(bench, preset, names):
    """{provider: reason} for those of ``names`` that cannot run here, asked of bench/providers.py."""
    sys.path.insert(0, str(bench.parent))
    try:
        from bench import providers
    finally:
        sys.path.remove(str(bench.parent))
    return {name: providers.get(name).missing(preset) for name in names}


def _progress(total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # a bare GPU machine: run without a bar
        return None
    return tqdm(total=total, desc=desc, unit="bench", leave=True, dynamic_ncols=True, file=sys.stderr)


def run_provider(bench, provider, *, preset, out, select=None, progress=True, tag=""):
    """Run every suite for one provider in a child pytest; returns the path of its pytest-benchmark JSON.

    The child's output goes to ``out/log-<provider><tag>.txt``; its ``-v`` result lines drive a progress bar
    named after the suite running. Raises BenchError when a benchmark fails (its check, or an error).
    """
    raw = out / f"raw-{provider}{tag}.json"
    log = out / f"log-{provider}{tag}.txt"
    cmd = [sys.executable, "-m", "pytest", str(bench), "-v", "-p", "no:cacheprovider", "-o", "python_files=bench_*.py",
           "--benchmark-only",
           f"--bench-preset={preset}", f"--bench-providers={provider}", f"--benchmark-json={raw}",
           "--benchmark-disable-gc", "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]
    if select:
        cmd += ["-k", select]
    env = dict(os.environ, NNCORE_BENCH_FLOORS=str(out / "floors.json"), PYTHONUNBUFFERED="1")
    bar = None
    failed = []
    with open(log, "w") as logf, subprocess.Popen(cmd, cwd=bench.parent, env=env, stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True, errors="replace") as child:
        for line in child.stdout:
            logf.write(line)
            m = _COLLECTED.search(line)
            if m and bar is None and progress:
                bar = _progress(int(m.group(2) or m.group(1)), provider + tag)
            m = _RESULT.match(line)
            if m:
                if m.group("outcome") in ("FAILED", "ERROR"):
                    failed.append(line.split()[0])
                if bar is not None:
                    bar.set_description(f"{provider}{tag} {Path(m.group('file')).stem.removeprefix('bench_')}")
                    bar.update(1)
        code = child.wait()
    if bar is not None:
        bar.close()
    if failed or code not in (0, 5):  # 5: nothing collected (e.g. -k matched no benchmark)
        what = f"{len(failed)} failed ({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''})" if failed \
            else f"pytest exited with status {code}"
        raise BenchError(f"{provider}: {what}; see {log}")
    if raw.exists() and raw.stat().st_size == 0:  # pytest-benchmark opens the file even when nothing ran
        raw.unlink()
    return raw if raw.exists() else None


def versions():
    """Installed versions of the packages a benchmark run depends on (those installed)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def merge(raw_paths, *, preset, floors=None, skipped=None, repeat=1):
    """One results dict from the per-provider pytest-benchmark JSON files.

    With several runs of the same benchmark (``repeat`` > 1), the run with the median median is kept (the
    lower of the middle two for an even count), and
    ``extra_info["runs_s"]`` lists every run's median, so a table shows the typical run and its spread.
    """
    merged = {"preset": preset, "repeat": repeat, "versions": versions(), "floors": floors or {},
              "skipped": skipped or {}, "benchmarks": []}
    runs = defaultdict(list)
    for path in raw_paths:
        with open(path) as f:
            data = json.load(f)
        for key in ("machine_info", "commit_info", "datetime"):
            merged.setdefault(key, data.get(key))
        for b in data["benchmarks"]:
            b["stats"].pop("data", None)  # every round's time: kept in raw-<provider>.json, not here
            runs[b["fullname"]].append(b)
    for same in runs.values():
        same.sort(key=lambda b: b["stats"]["median"])
        kept = same[(len(same) - 1) // 2]
        if len(same) > 1:
            kept["extra_info"]["runs_s"] = [b["stats"]["median"] for b in same]
        merged["benchmarks"].append(kept)
    return merged


def run(*, preset="quick", providers=PROVIDERS, out="nncore-bench", select=None, suites=None, progress=True,
        repeat=1, echo=print):
    """Run the suites provider by provider and return the merged results (also written to out/bench.json).

    ``repeat`` > 1 runs the providers that many times in turn (A B C, A B C, ...), so a slow spell of a
    shared machine lands on every provider alike rather than on one, and keeps each benchmark's median run.
    """
    bench = suites_dir(suites)
    out = Path(out).resolve()  # the children run in the repository's folder
    out.mkdir(parents=True, exist_ok=True)
    for old in ("floors.json", "bench.json", "report.md", "times.png", "raw-*.json", "log-*.txt", "scaling-*.png"):
        for path in out.glob(old):
            path.unlink()  # a new run measures its own floors, and leaves no stale file of an earlier one
    missing = {p: why for p, why in _provider_missing(bench, preset, providers).items() if why}
    for p, why in missing.items():
        echo(f"skipping {p}: {why}")
    raws, failures = [], []
    for r in range(repeat):
        for p in providers:
            if p not in missing:
                try:
                    raw = run_provider(bench, p, preset=preset, out=out, select=select, progress=progress,
                                       tag=f"-run{r + 1}" if repeat > 1 else "")
                except BenchError as exc:  # keep going: the other providers' results are still worth having
                    failures.append(str(exc))
                    echo(f"error: {exc}")
                    continue
                if raw is not None:
                    raws.append(raw)
    if not raws:
        raise BenchError("; ".join(failures) or "no benchmark ran: no provider available, or -k matched nothing")
    floors_path = out / "floors.json"
    floors = json.loads(floors_path.read_text()) if floors_path.exists() else {}
    results = merge(raws, preset=preset, floors=floors, skipped=missing, repeat=repeat)
    results["failures"] = failures
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    return results


# ---- tables -------------------------------------------------------------------------------------------


def _fmt_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _label(b):
    info = b["extra_info"]
    variant = info.get("variant")
    return f"{info['provider']} ({variant})" if variant else info["provider"]


def _device(b):
    return "cpu" if b["extra_info"]["provider"] in CPU_PROVIDERS else "cuda"


def _shape_key(shape):
    """Sort shapes numerically: "256x1024" before "256x16384", "64K" before "2M"."""
    shape = re.sub(r"(\d+)([KM])\b", lambda m: str(int(m.group(1)) << (10 if m.group(2) == "K" else 20)), shape)
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", shape)]


def groups(results):
    """{(op, shape): [benchmark, ...]} in op order, then numeric shape order."""
    out = defaultdict(list)
    for b in results["benchmarks"]:
        info = b["extra_info"]
        if "op" in info:
            out[(info["op"], info["shape"])].append(b)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], _shape_key(kv[0][1]))))


def speedups(rows):
    """{id(row): how many times faster than the fastest PyTorch row on the same device} (None: no torch)."""
    best = {}
    for b in rows:
        p = b["extra_info"]["provider"]
        if p in TORCH.values():
            d = _device(b)
            best[d] = min(best.get(d, math.inf), b["stats"]["median"])
    return {id(b): (best[_device(b)] / b["stats"]["median"] if _device(b) in best and
                    b["extra_info"]["provider"] not in TORCH.values() else None) for b in rows}


def _machine(results):
    cpu = (results.get("machine_info") or {}).get("cpu", {})
    gpu = (results.get("floors") or {}).get("device")
    return f"{cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} logical CPUs" + (f", {gpu}" if gpu else "")


def header(results):
    m = results.get("machine_info") or {}
    lines = [f"Machine: {_machine(results)}; "
             f"Python {m.get('python_version', '?')}; run {results.get('datetime', '?')}; "
             f"preset {results.get('preset', '?')}",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items())]
    f = results.get("floors") or {}
    if "copy_Bps" in f:
        lines.append(f"CPU floors measured in this run: one NumPy copy {f['copy_Bps'] / 1e9:.1f} GB/s, every core "
                     f"copying {f['copy_all_cores_Bps'] / 1e9:.1f} GB/s (read + write counted), BLAS sgemm "
                     f"{f['sgemm_flops'] / 1e9:.0f} GFLOP/s, dgemm {f['dgemm_flops'] / 1e9:.0f} GFLOP/s")
    if results.get("repeat", 1) > 1:
        lines.append(f"Each provider ran {results['repeat']} times, in turn with the others; each row is the run "
                     "with the median time, the range of all runs in brackets")
    if "device_copy_Bps" in f:
        lines.append(f"GPU floors ({f.get('device', '?')}): device copy {f['device_copy_Bps'] / 1e9:.0f} GB/s, "
                     f"cuBLAS sgemm (TF32 off) {f['device_sgemm_flops'] / 1e9:.0f} GFLOP/s")
    for p, why in (results.get("skipped") or {}).items():
        lines.append(f"Not run: {p} ({why})")
    for failure in results.get("failures") or []:
        lines.append(f"FAILED: {failure}")
    return lines


def format_tables(results):
    """Markdown: the run's header, then one table per (op, shape), fastest first."""
    lines = header(results) + [""]
    for (op, shape), rows in groups(results).items():
        rows = sorted(rows, key=lambda b: b["stats"]["median"])
        fast = speedups(rows)
        lines += [f"### {op} {shape}", "",
                  "| provider | median | rate | % of floor | vs PyTorch |", "| --- | --- | ---: | ---: | ---: |"]
        for b in rows:
            info = b["extra_info"]
            rate = (f"{info['GFLOPs']:.1f} GFLOP/s" if "GFLOPs" in info else
                    f"{info['GBps']:.1f} GB/s" if "GBps" in info else "")
            frac = f"{100 * info['fraction_of_floor']:.0f}%" if "fraction_of_floor" in info else ""
            s = fast[id(b)]
            median = _fmt_time(b["stats"]["median"])
            if "runs_s" in info:
                median += f" ({_fmt_time(min(info['runs_s']))} - {_fmt_time(max(info['runs_s']))})"
            lines.append(f"| {_label(b)} | {median} | {rate} | {frac} | {f'{s:.2f}x' if s is not None else ''} |")
        lines.append("")
    return "\n".join(lines)


# ---- charts -------------------------------------------------------------------------------------------

_COLORS = {"nncore-cpu": "#1f77b4", "numpy": "#7f7f7f", "torch-cpu": "#d62728", "jax-cpu": "#2ca02c",
           "nncore-cuda": "#17becf", "cupy": "#bcbd22", "torch-cuda": "#ff7f0e"}


def _color(label):
    return _COLORS.get(label.split(" ")[0], "#9467bd")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def chart_times(results, path):
    """One panel per op: median time of each provider (bars) for each shape, log scale."""
    plt = _plt()
    by_op = defaultdict(dict)
    for (op, shape), rows in groups(results).items():
        by_op[op][shape] = rows
    ops = sorted(by_op)
    cols = min(4, len(ops))
    nrows = math.ceil(len(ops) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.4 * nrows), squeeze=False, layout="constrained")
    for ax, op in zip(axes.flat, ops):
        shapes = sorted(by_op[op], key=_shape_key)
        labels = sorted({_label(b) for rows in by_op[op].values() for b in rows},
                        key=lambda s: (PROVIDERS.index(s.split(" ")[0]) if s.split(" ")[0] in PROVIDERS else 99, s))
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            xs, ts = [], []
            for i, shape in enumerate(shapes):
                t = [b["stats"]["median"] for b in by_op[op][shape] if _label(b) == label]
                if t:
                    xs.append(i + (j - (len(labels) - 1) / 2) * width)
                    ts.append(t[0])
            ax.bar(xs, ts, width=width, color=_color(label), label=label)
        ax.set_yscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("median time (s)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=6)
    for ax in axes.flat[len(ops):]:
        ax.axis("off")
    fig.suptitle(f"median time per call, lower is better ({_machine(results)}, preset {results.get('preset', '?')})",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scaling_series(results):
    """The scaling sweeps in a run: [(op, key, fixed, {label: [(x, benchmark), ...]})].

    For each op whose benchmarks carry ``params``, each parameter that takes 3 or more values along a line
    where the other parameters stay fixed is a sweep (the longest such line is kept).
    """
    by_op = defaultdict(list)
    for b in results["benchmarks"]:
        if b["extra_info"].get("params"):
            by_op[b["extra_info"]["op"]].append(b)
    found = []
    for op, rows in sorted(by_op.items()):
        keys = sorted({k for b in rows for k in b["extra_info"]["params"]})
        for key in keys:
            lines = defaultdict(set)
            for b in rows:
                p = b["extra_info"]["params"]
                if key in p:
                    lines[tuple(sorted((k, v) for k, v in p.items() if k != key))].add(p[key])
            if not lines:
                continue
            fixed, values = max(lines.items(), key=lambda kv: len(kv[1]))
            if len(values) < 3:
                continue
            series = defaultdict(list)
            for b in rows:
                p = b["extra_info"]["params"]
                if key in p and tuple(sorted((k, v) for k, v in p.items() if k != key)) == fixed:
                    series[_label(b)].append((p[key], b))
            found.append((op, key, dict(fixed), {k: sorted(v, key=lambda xb: xb[0]) for k, v in series.items()}))
    return found


def chart_scaling(op, key, fixed, series, path):
    """Time and throughput against one parameter, log-log, one line per provider."""
    plt = _plt()
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    rate_key, rate_name = "GBps", "GB/s"
    if any("GFLOPs" in b["extra_info"] for pts in series.values() for _, b in pts):
        rate_key, rate_name = "GFLOPs", "GFLOP/s"
    for label, pts in sorted(series.items()):
        xs = [x for x, _ in pts]
        ax_t.plot(xs, [b["stats"]["median"] for _, b in pts], "o-", color=_color(label), label=label)
        rated = [(x, b["extra_info"][rate_key]) for x, b in pts if rate_key in b["extra_info"]]
        if rated:
            ax_r.plot(*zip(*rated), "o-", color=_color(label), label=label)
    where = ", ".join(f"{k}={v}" for k, v in fixed.items())
    for ax, ylabel in ((ax_t, "median time (s)"), (ax_r, rate_name)):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title(f"{op}: time vs {key}" + (f" ({where})" if where else ""), fontsize=10)
    ax_r.set_title(f"{op}: throughput vs {key}", fontsize=10)
    ax_t.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def write_charts(results, out):
    """times.png and one scaling-<op>-<key>.png per sweep; returns the paths written."""
    out = Path(out)
    paths = [chart_times(results, out / "times.png")] if groups(results) else []
    for op, key, fixed, series in scaling_series(results):
        paths.append(chart_scaling(op, key, fixed, series, out / f"scaling-{_slug(op)}-{_slug(key)}.png"))
    return paths


def report(results, out, *, charts=True, echo=print):
    """Print the tables, write report.md (and the charts) into ``out``; returns the chart paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = format_tables(results)
    (out / "report.md").write_text(text + "\n")
    echo(text)
    paths = []
    if charts:
        try:
            paths = write_charts(results, out)
        except ImportError:
            echo("matplotlib is not installed: no charts (pip install matplotlib, then nncore bench --report)")
    echo(f"wrote {out / 'report.md'}" + (", " + ", ".join(str(p) for p in paths) if paths else ""))
    return paths
