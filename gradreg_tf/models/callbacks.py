"""The classifier's training guard: stop at the first non-finite loss or penalty."""

from __future__ import annotations

import math

import keras


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or penalty (non-finite input, or λ too large)."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Raises :class:`NonFiniteLossError` at the first batch whose loss or penalty is not finite."""

    def __init__(self, describe):
        super().__init__()
        self.describe, self.epoch = describe, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        values = {k: float(logs[k]) for k in ("loss", "penalty") if k in logs}
        if not all(math.isfinite(v) for v in values.values()):
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise NonFiniteLossError(
                f"non-finite loss at batch {batch + 1} of epoch {self.epoch + 1}: {shown}; "
                f"training stopped ({self.describe()}). Check the input for NaN or infinite "
                "pixels (tf.data input is not scanned beforehand) and lower penalty_weight."
            )


