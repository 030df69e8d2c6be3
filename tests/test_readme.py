"""The README's Python quick start runs as written and trains a model that is better than chance."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert (tmp_path / "digits.npz").exists()
    assert namespace["history"].epochs >= 5
    out = capsys.readouterr().out
    accuracy = float(re.search(r"'accuracy': ([0-9.]+)", out).group(1))
    assert accuracy >= 0.95
