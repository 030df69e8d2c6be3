"""nncore: training neural networks on compiled kernels.

The arithmetic lives in the ``kernels`` package (Numba kernels); this package is the thin, PyTorch-like
layer people import: modules, losses, optimizers, schedules, the training loop, data, checkpoints.

    import nncore
    data = nncore.data.load("digits")
    model = nncore.MLP([64, 128, 10], dropout=0.2, seed=0)
    opt = nncore.optim.Adam(model.parameters(), lr=2e-3)
    nncore.fit(model, data.X_train, data.y_train, loss=nncore.CrossEntropyLoss(), optimizer=opt,
               epochs=20, batch_size=64, validation_split=0.1)
    print(nncore.evaluate(model, data.X_test, data.y_test, loss=nncore.CrossEntropyLoss()))
"""

from . import data, functional, optim, schedules
from .checkpoint import Checkpoint, load, save
from .device import DeviceUnavailableError, array_module, available_devices, to_device, to_numpy
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss, NLLLoss
from .modules import (
    MLP,
    BatchNorm1d,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    from_config,
)
from .parameter import Parameter
from .training import EarlyStopping, History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "BCEWithLogitsLoss", "BatchNorm1d", "Checkpoint", "CrossEntropyLoss", "DeviceUnavailableError", "Dropout",
    "EarlyStopping", "History", "Identity", "L1Loss", "LeakyReLU", "Linear", "Loss", "MLP", "MSELoss", "Module",
    "NLLLoss", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "__version__", "array_module", "available_devices",
    "data", "evaluate", "fit", "from_config", "functional", "load", "optim", "predict", "save", "schedules",
    "to_device", "to_numpy",
]
