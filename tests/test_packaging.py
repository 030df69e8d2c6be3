"""`pip install .` (not only the editable install the test suite runs from) ships both packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_kernels_and_nncore(tmp_path):
    pytest.importorskip("setuptools")
    # --no-build-isolation: build with this environment's setuptools instead of downloading one
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("nncore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("kernels/__init__.py", "kernels/reference.py", "kernels/softmax_xent/cpu.py",
                   "nncore/__init__.py", "nncore/device.py"):
        assert module in names, f"{module} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    # the wheel imports on its own, from a directory outside the source tree
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True)
    code = "import kernels, nncore; print(kernels.__file__)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}).stdout
    assert str(target) in out


def test_import_needs_no_gpu_stack_and_no_optional_extras():
    # `import nncore` must work (and stay quick) on a CPU-only machine: the CUDA kernels, CuPy, scikit-learn,
    # matplotlib and tqdm load only when something asks for them
    code = ("import sys, kernels, nncore; "
            "print(sorted(m for m in ('numba.cuda', 'cupy', 'sklearn', 'matplotlib', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
