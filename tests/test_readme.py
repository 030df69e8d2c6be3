"""The README's Python quick start runs as written and trains a model that is better than chance; its GPU
snippet (which continues the quick start) runs after it on a GPU machine."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    quick_start, gpu = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return quick_start, gpu


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    code, _ = _python_blocks()
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert (tmp_path / "digits.npz").exists()
    assert namespace["history"].epochs >= 5
    out = capsys.readouterr().out
    accuracy = float(re.search(r"'accuracy': ([0-9.]+)", out).group(1))
    assert accuracy >= 0.95


@pytest.mark.gpu
def test_gpu_snippet_runs_after_the_quick_start(dev, tmp_path, monkeypatch):
    import numba

    if numba.config.ENABLE_CUDASIM:
        pytest.skip("30 epochs of digits take hours in the CUDA simulator (tests/test_nn_device.py covers the "
                    "same calls on tiny data)")
    pytest.importorskip("sklearn")
    quick_start, gpu = _python_blocks()
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(quick_start, str(README), "exec"), namespace)
    exec(compile(gpu, str(README), "exec"), namespace)
    assert namespace["model"].device == "cuda" and namespace["ck"].model.device == "cuda"
    assert namespace["history"].epochs >= 5
