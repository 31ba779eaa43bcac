"""Moved to :mod:`gradreg_tf.eval.grids` (the evaluation package); this name keeps existing imports
working and warns once."""

import sys
import warnings

from gradreg_tf.eval import grids as _moved

warnings.warn("gradreg_tf.evaluation moved to gradreg_tf.eval.grids; import it from there.",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
