"""Turn a pytest-benchmark JSON file into the Markdown tables of bench/RESULTS.md.

    python -m pytest bench --benchmark-only --benchmark-json=bench/results/cpu.json
    python bench/summarize.py bench/results/cpu.json > table.md

One table per benchmark group: median time, GB/s or GFLOP/s, the fraction of the floor (copy bandwidth
and BLAS rate measured in the same run, see bench/conftest.py) and, where a PyTorch variant ran in the
same group, how many times faster than it each entry is.
"""

from __future__ import annotations

import json
import sys


def _fmt_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def summarize(data) -> str:
    groups: dict[str, list] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b.get("group") or b["name"], []).append(b)
    m = data.get("machine_info", {})
    lines = [f"Machine: {m.get('cpu', {}).get('brand_raw', '?')}, {m.get('cpu', {}).get('count', '?')} "
             f"logical CPUs; Python {m.get('python_version', '?')}; run {data.get('datetime', '?')}", ""]
    first = data["benchmarks"][0]["extra_info"] if data["benchmarks"] else {}
    if "copy_GBps" in first:
        lines += [f"Floors measured in the same run: copy bandwidth {first['copy_GBps']} GB/s for one NumPy "
                  f"copy, {first.get('copy_all_cores_GBps', '?')} GB/s with every core copying (read + write "
                  f"counted); threading layer {first.get('threading_layer', '?')}", ""]
    if "device_copy_GBps" in first:
        lines += [f"GPU: {first.get('device', '?')}; device-to-device copy bandwidth measured in the same run "
                  f"{first['device_copy_GBps']} GB/s (read + write counted): the floor of the GPU rows", ""]
    blas = next((b["extra_info"]["blas_GFLOPs"] for b in data["benchmarks"] if "blas_GFLOPs" in b["extra_info"]), None)
    if blas:
        lines += [f"BLAS rate measured in the same run (float32, 2048^3): {blas} GFLOP/s", ""]
    for group in sorted(groups):
        rows = sorted(groups[group], key=lambda b: b["stats"]["median"])
        torch_t = [b["stats"]["median"] for b in rows if "torch" in b["name"]]
        lines += [f"### {group}", "",
                  "| benchmark | median | rate | fraction of floor | of all-cores copy | vs torch |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for b in rows:
            info, t = b["extra_info"], b["stats"]["median"]
            rate = (f"{info['GFLOPs']} GFLOP/s" if "GFLOPs" in info else
                    f"{info['GBps']} GB/s" if "GBps" in info else "")
            frac = info.get("fraction_of_floor", "")
            speed = f"{torch_t[0] / t:.2f}x" if torch_t and "torch" not in b["name"] else ""
            frac_all = info.get("fraction_of_all_cores_copy", "")
            lines.append(f"| {b['name']} | {_fmt_time(t)} | {rate} | {frac} | {frac_all} | {speed} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python bench/summarize.py RESULTS.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(summarize(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
