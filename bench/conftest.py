"""The benchmark harness: presets, providers, the machine's own ceilings, and one timed-and-checked call.

Every benchmark in bench/ is a test taking ``provider`` and ``shape`` and calling the ``measure`` fixture:

    @shapes(tiny=[(8, 33)], quick=[(512, 1024)], full=[...], ids=lambda s: f"{s[0]}x{s[1]}")
    def test_softmax(measure, provider, shape):
        x = fresh_random(shape)
        xp_x = provider.asarray(x)
        fn = IMPLEMENTATIONS[provider.name](xp_x)            # the op on this provider, ready to call
        measure(fn, op="softmax f32", shape=shape_id(shape), nbytes=2 * x.nbytes,
                check=lambda y: assert_close(y, reference.softmax(x)))

``measure`` warms the call up (JIT compilation, first-touch allocation: never timed), times it with
pytest-benchmark, synchronising the GPU inside every timed call, records the bytes and flops the op must
move, GB/s, GFLOP/s and the fraction of the floor in ``extra_info``, and then checks the result (as NumPy)
against the float64 oracle. With ``--benchmark-disable`` the call runs once and is checked: that is how CI
keeps every benchmark body correct.

Options (also read from the environment, for ``nncore bench``):
  --bench-preset tiny|quick|full   (NNCORE_BENCH_PRESET) which shapes; quick is the default, full adds the
                                   targets' sizes and the whole scaling sweeps, tiny is for CI and the
                                   CUDA simulator
  --bench-providers a,b,...        (NNCORE_BENCH_PROVIDERS) which providers: names from bench/providers.py,
                                   or ``cpu``, ``gpu``, ``all`` (default)

Floors: the copy bandwidth of one large NumPy copy (read + write counted; the targets are stated against
it), the same with every core copying, and the BLAS sgemm/dgemm rate, measured once per session before
any Numba parallel region runs; on a GPU, the device-to-device copy bandwidth and the cuBLAS sgemm rate
(through CuPy, or torch without CuPy; TF32 off). When NNCORE_BENCH_FLOORS names a file, the floors are
read from it if there and written to it otherwise, so the several processes of one ``nncore bench`` run
share one measurement.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest

from bench import providers
from nncore.bench import parse_providers

PRESETS = ("tiny", "quick", "full")
# seconds of timed calls a benchmark aims for, and the fewest rounds it takes, per preset
BUDGET = {"tiny": 0.05, "quick": 0.25, "full": 1.0}
MIN_ROUNDS = {"tiny": 1, "quick": 3, "full": 5}
MAX_ROUNDS = 2000


def shape_id(shape):
    """``(256, 1024)`` -> ``"256x1024"``; a flat size ``(16777216,)`` -> ``"16M"``, ``(65536,)`` -> ``"64K"``;
    anything else as str()."""
    if isinstance(shape, tuple) and all(isinstance(d, (int, np.integer)) for d in shape):
        if len(shape) == 1:
            n = int(shape[0])
            for unit, bits in (("M", 20), ("K", 10)):
                if n >= 1 << bits and n % (1 << bits) == 0:
                    return f"{n >> bits}{unit}"
        return "x".join(str(d) for d in shape)
    return str(shape)


def shapes(*, tiny, quick, full=None, ids=shape_id):
    """Mark a benchmark's shapes per preset (``full`` defaults to ``quick``); ``ids`` names one shape."""
    return pytest.mark.shapes(tiny=list(tiny), quick=list(quick), full=list(quick if full is None else full),
                              ids=ids)


_case = {}


def one_case(key, make):
    """The inputs of a benchmark for ``key`` (e.g. its module and shape), built by ``make()`` the first time
    and kept while the following tests ask for the same key (every provider of a shape runs in a row). One
    case is held at a time across the session: the big ones are hundreds of MiB."""
    if _case.get("key") != key:
        _case.clear()
        _case.update(key=key, value=make())
    return _case["value"]


def gpu_only(provider, why):
    """Skip a CPU provider on a shape meant for the GPU providers (``why``: its size, for the skip reason)."""
    if provider.device == "cpu":
        pytest.skip(f"GPU providers only: {why}")


def only(*names):
    """Mark a benchmark as meaningful for these providers alone (e.g. float64: not jax, which is float32)."""
    return pytest.mark.only_providers(names=names)


# ---- options and parametrisation ---------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line("markers", "shapes(tiny, quick, full, ids): a benchmark's shapes per preset")
    config.addinivalue_line("markers", "only_providers(names): the providers a benchmark is meaningful for")


def pytest_addoption(parser):
    group = parser.getgroup("nncore benchmarks")
    group.addoption("--bench-preset", choices=PRESETS, default=os.environ.get("NNCORE_BENCH_PRESET", "quick"),
                    help="which shapes to run: tiny (CI, simulator), quick (default), full")
    group.addoption("--bench-providers", default=os.environ.get("NNCORE_BENCH_PROVIDERS", "all"),
                    help="comma-separated providers, or cpu / gpu / all")


def selected_providers(text):
    try:
        return parse_providers(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--bench-providers: {exc}") from None


def pytest_generate_tests(metafunc):
    preset = metafunc.config.getoption("--bench-preset")
    if "shape" in metafunc.fixturenames:
        mark = metafunc.definition.get_closest_marker("shapes")
        if mark is None:
            raise pytest.UsageError(f"{metafunc.definition.nodeid} takes `shape` but has no @shapes(...) mark")
        metafunc.parametrize("shape", mark.kwargs[preset], ids=mark.kwargs["ids"])
    if "provider" in metafunc.fixturenames:
        names = selected_providers(metafunc.config.getoption("--bench-providers"))
        mark = metafunc.definition.get_closest_marker("only_providers")
        if mark is not None:
            names = [n for n in names if n in mark.kwargs["names"]]
        metafunc.parametrize("provider", names, indirect=True)


@pytest.fixture
def preset(request):
    return request.config.getoption("--bench-preset")


@pytest.fixture
def provider(request, preset):
    p = providers.get(request.param)
    why = p.missing(preset)
    if why:
        pytest.skip(f"{p.name}: {why}")
    return p


# ---- floors --------------------------------------------------------------------------------------------


def _best_of(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_copy_bandwidth(nbytes=512 << 20, repeats=7, threads=1):
    """Bytes per second of np.copyto over a large float32 array, counting the read and the write.

    ``threads=1`` is the floor the targets are stated against (the copy bandwidth of a large NumPy array);
    with more threads each copies its own slice (NumPy releases the GIL), which is what the memory system
    can do with every core streaming, the stricter ceiling.
    """
    a = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    if threads == 1:
        return 2 * a.nbytes / _best_of(lambda: np.copyto(b, a), repeats)
    bounds = np.linspace(0, a.size, threads + 1).astype(int)
    slices = [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    with ThreadPoolExecutor(threads) as pool:
        return 2 * a.nbytes / _best_of(lambda: list(pool.map(lambda s: np.copyto(b[s], a[s]), slices)), repeats)


def measure_gemm_rate(dtype, n=2048, repeats=5):
    """Flops per second of a square BLAS matmul (NumPy's BLAS) in the given dtype."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    return 2 * n**3 / _best_of(lambda: np.matmul(a, b, out=c), repeats)


def _cores():
    """The cores this process may run on (its affinity, which a container or taskset may narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_floors(small=False):
    """The CPU ceilings. Measured before any Numba parallel region runs (libgomp's spinning workers would slow
    OpenBLAS), each as the best of two rounds a second apart, so a passing burst of other work on this shared
    machine does not lower them. ``small`` (the tiny preset, a smoke run): one quick round on small arrays."""
    if small:
        copy = measure_copy_bandwidth(64 << 20, repeats=3)
        return {"sgemm_flops": measure_gemm_rate(np.float32, n=512, repeats=3),
                "dgemm_flops": measure_gemm_rate(np.float64, n=512, repeats=3), "copy_Bps": copy,
                "copy_all_cores_Bps": measure_copy_bandwidth(64 << 20, repeats=3, threads=_cores()),
                "cpu_count": _cores()}

    def best_twice(fn):
        first = fn()
        time.sleep(1.0)
        return max(first, fn())

    return {
        "sgemm_flops": best_twice(lambda: measure_gemm_rate(np.float32)),
        "dgemm_flops": best_twice(lambda: measure_gemm_rate(np.float64)),
        "copy_Bps": best_twice(measure_copy_bandwidth),
        "copy_all_cores_Bps": best_twice(lambda: measure_copy_bandwidth(threads=_cores())),
        "cpu_count": _cores(),
    }


def _best_of_events(fn, repeats, new_event, seconds):
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up, timed on the GPU between two events."""
    start, stop = new_event(), new_event()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        best = min(best, seconds(start, stop))
    return best


def _gpu_floors():
    """Device-to-device copy of 1 GiB (best of 10) and a 8192^3 float32 GEMM with TF32 off (best of 5), timed
    with CUDA events: through CuPy (cuBLAS) when it is installed, else through torch (torch-cuda alone)."""
    try:
        import cupy
    except ImportError:
        return _gpu_floors_torch()
    from kernels.matmul import matmul  # cuBLAS through CuPy with TF32 off, whatever CUPY_TF32 says

    def best_of_events(fn, repeats):
        return _best_of_events(fn, repeats, cupy.cuda.Event, lambda a, b: cupy.cuda.get_elapsed_time(a, b) / 1e3)

    def copy_rate():
        a = cupy.random.default_rng(0).random((1 << 28,), dtype=cupy.float32)
        b = cupy.empty_like(a)
        return 2 * a.nbytes / best_of_events(lambda: cupy.copyto(b, a), 10)

    def gemm_rate(n=8192):
        x = cupy.random.default_rng(1).standard_normal((n, n), dtype=cupy.float32)
        y = cupy.empty_like(x)
        return 2 * n**3 / best_of_events(lambda: matmul(x, x, out=y), 5)

    try:
        copy, gemm = copy_rate(), gemm_rate()
    finally:
        cupy.get_default_memory_pool().free_all_blocks()  # the 2.5 GiB of test arrays go back to the device
    return {"device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
            "device_copy_Bps": copy, "device_sgemm_flops": gemm}


def _gpu_floors_torch():
    import torch

    def best_of_events(fn, repeats):
        return _best_of_events(fn, repeats, lambda: torch.cuda.Event(enable_timing=True),
                               lambda a, b: a.elapsed_time(b) / 1e3)

    def copy_rate():
        a = torch.rand(1 << 28, device="cuda")
        b = torch.empty_like(a)
        return 2 * a.numel() * 4 / best_of_events(lambda: b.copy_(a), 10)

    def gemm_rate(n=8192):
        x = torch.randn(n, n, device="cuda")
        y = torch.empty_like(x)
        return 2 * n**3 / best_of_events(lambda: torch.mm(x, x, out=y), 5)

    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        copy, gemm = copy_rate(), gemm_rate()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.cuda.empty_cache()
    return {"device": torch.cuda.get_device_name(0), "device_copy_Bps": copy, "device_sgemm_flops": gemm}


class Floors:
    """The ceilings of this machine, measured on first use and shared through NNCORE_BENCH_FLOORS."""

    def __init__(self, path=None):
        self.path = path
        self.values = {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.values = json.load(f)

    def _ensure(self, key, measure):
        if key not in self.values:
            self.values.update(measure())
            if self.path:
                with open(self.path, "w") as f:
                    json.dump(self.values, f, indent=1)
        return self.values

    def cpu(self, small=False):
        return self._ensure("copy_Bps", lambda: _cpu_floors(small))

    def gpu(self):
        return self._ensure("device_copy_Bps", _gpu_floors)


@pytest.fixture(scope="session")
def floors(request):
    f = Floors(os.environ.get("NNCORE_BENCH_FLOORS"))
    if request.config.getoption("benchmark_disable"):
        return f  # nothing is timed: no floors needed
    f.cpu(small=request.config.getoption("--bench-preset") == "tiny")
    return f


def _threading_layer():
    """The Numba threading layer nncore's parallel kernels run on (it is chosen at the first parallel call;
    "workqueue" would serialise them, so a benchmark records which one it got)."""
    @numba.njit(parallel=True, cache=False)
    def _touch(a):
        for i in numba.prange(a.size):
            a[i] += 1.0

    _touch(np.zeros(4))
    return numba.threading_layer()


# ---- the timed, checked call ---------------------------------------------------------------------------


def rounds_for(seconds_per_call, preset):
    """How many timed rounds fit the preset's budget (at least MIN_ROUNDS, at most MAX_ROUNDS)."""
    if seconds_per_call <= 0:
        return MAX_ROUNDS
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS[preset], BUDGET[preset] / seconds_per_call)))


def _per_call(fn, preset):
    """The fastest of a few warm calls (at least 3, or a quarter of the budget): one slow call after the
    warm-up must not cut a benchmark down to its minimum rounds."""
    times, spent = [], 0.0
    while len(times) < 3 or spent < BUDGET[preset] / 4:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
        if spent > BUDGET[preset] or len(times) >= 20:
            break
    return min(times)


def record(info, floors_values, device, median, *, nbytes=0, flops=0, dtype=np.float32):
    """Write the rates and the fraction of the floor of one timed op into ``info`` (a dict)."""
    f = floors_values
    if device == "cuda":
        copy, gemm = f["device_copy_Bps"], f["device_sgemm_flops"]
        info["device"] = f["device"]
    else:
        copy = f["copy_Bps"]
        gemm = f["sgemm_flops" if np.dtype(dtype) == np.float32 else "dgemm_flops"]
        info["copy_all_cores_GBps"] = round(f["copy_all_cores_Bps"] / 1e9, 2)
    info["copy_GBps"] = round(copy / 1e9, 2)
    info["gemm_GFLOPs"] = round(gemm / 1e9, 1)
    info["median_s"] = median
    floor_t = 0.0
    if nbytes:
        info["bytes"] = int(nbytes)
        info["GBps"] = round(nbytes / median / 1e9, 2)
        floor_t = max(floor_t, nbytes / copy)
        if device == "cpu":
            info["fraction_of_all_cores_copy"] = round(nbytes / f["copy_all_cores_Bps"] / median, 3)
    if flops:
        info["flops"] = int(flops)
        info["GFLOPs"] = round(flops / median / 1e9, 2)
        floor_t = max(floor_t, flops / gemm)
    if floor_t:
        info["fraction_of_floor"] = round(floor_t / median, 3)
    return info


@pytest.fixture
def measure(provider, preset, floors, benchmark):  # provider first: a missing one skips before timing starts
    """``measure(fn, op=..., shape=..., check=..., nbytes=..., flops=..., dtype=..., params=..., **extra)``.

    Warms ``fn`` up, times it (the provider's device synchronised inside each timed call), records the
    rates, then calls ``check`` on the result converted to NumPy, and returns that NumPy result.
    ``op`` and ``shape`` (strings) name the group, so every provider of one op and shape shares a table;
    ``params`` (a dict of numbers, e.g. ``{"N": 256, "C": 4096}``) places the benchmark on a scaling curve:
    pass it only for the points of a sweep (for each parameter, the report draws the longest line of 3 or
    more values along which the other parameters stay fixed).
    """
    if provider.device == "cuda" and not provider.simulated and not benchmark.disabled:
        floors.gpu()

    def _measure(fn, *, op, shape, check, nbytes=0, flops=0, dtype=np.float32, params=None, **extra):
        benchmark.group = f"{op} {shape}"
        info = benchmark.extra_info
        info.update(provider=provider.name, op=op, shape=shape, params=dict(params or {}), **extra)
        if provider.simulated:
            info["simulated"] = True  # the CUDA simulator: a correctness run, its times mean nothing
        if provider.name == "nncore-cpu":
            info["threading_layer"] = _threading_layer()

        def timed():
            return provider.sync(fn())

        if benchmark.disabled:
            result = benchmark(timed)
        else:
            timed()  # the first call compiles (Numba, jax.jit) and allocates
            result = benchmark.pedantic(timed, rounds=rounds_for(_per_call(timed, preset), preset), warmup_rounds=1)
            if not provider.simulated:
                record(info, floors.values, provider.device, benchmark.stats.stats.median,
                       nbytes=nbytes, flops=flops, dtype=dtype)
        result = provider.to_numpy(result)
        check(result)
        return result

    return _measure
