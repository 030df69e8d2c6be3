"""The README's demo: an MLP trained on the digits data set with the kernels alone."""

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


def test_digits_mlp_from_kernels_learns():
    pytest.importorskip("sklearn")
    main = runpy.run_path(str(EXAMPLE))["main"]
    # 10 epochs already clear 90% test accuracy; chance is 10%
    assert main(["--epochs", "10", "--seed", "1"]) >= 0.90
