"""nncore's compiled kernel layer: NumPy arrays in, arrays out.

Every function validates its arguments (dtype float32/float64, shapes, ranges) and raises a TypeError or
ValueError naming the argument before any compiled code runs. Semantics follow PyTorch; the float64
oracle of every op is ``kernels.reference``. See docs/ARCHITECTURE.md for the layout.
"""

from .activations import (
    activation_backward,
    activation_forward,
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh,
    tanh_backward,
)
from .batchnorm import batchnorm_backward, batchnorm_forward
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .linear import LinearWorkspace, linear_backward, linear_forward
from .losses import binary_cross_entropy_with_logits, l1_loss, mse_loss
from .matmul import matmul
from .optim import (
    adadelta_update,
    adagrad_update,
    adam_update,
    adamw_update,
    nadam_update,
    rmsprop_update,
    sgd_update,
)
from .softmax_xent import (
    log_softmax,
    log_softmax_backward,
    nll_loss,
    softmax,
    softmax_backward,
    softmax_cross_entropy,
)

__all__ = [
    "LinearWorkspace", "activation_backward", "activation_forward", "adadelta_update", "adagrad_update", "adam_update",
    "adamw_update", "batchnorm_backward", "batchnorm_forward", "binary_cross_entropy_with_logits",
    "dropout_backward", "dropout_forward", "dropout_mask", "l1_loss", "leaky_relu", "leaky_relu_backward",
    "linear_backward", "linear_forward", "log_softmax", "log_softmax_backward", "matmul", "mse_loss",
    "nadam_update", "nll_loss", "relu", "relu_backward", "rmsprop_update", "sgd_update", "sigmoid",
    "sigmoid_backward", "softmax", "softmax_backward", "softmax_cross_entropy", "tanh", "tanh_backward",
]
