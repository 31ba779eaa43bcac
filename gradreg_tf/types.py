"""Small shared types: pixel bounds and the array-like inputs the library accepts."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import numpy as np

TensorLike = Union[np.ndarray, Any]  # numpy array or tf.Tensor
ModelFn = Callable[..., Any]  # any callable x -> logits (a Keras model qualifies)


class Bounds(NamedTuple):
    """Closed pixel range ``[lower, upper]`` of a dataset (the attacks clip to it)."""

    lower: float
    upper: float

    def __repr__(self) -> str:  # prints like the plain pair it is
        return repr(tuple(self))
