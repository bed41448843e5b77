"""Audio encoders: an [N_MELS, MEL_SPAN] mel window -> one VECTOR_SIZE vector per video frame.

The built-in projection is a fixed contract the bundled parametric-mouth model reads; a
trained model brings its own ONNX "AVE" encoder ([B,1,80,16] -> [B,512]).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lipstream.contract import ENERGY_COMPONENT, MEL_SPAN, N_MELS, VECTOR_SIZE

log = logging.getLogger(__name__)

PROJECTION_SEED = 20240611
ENCODER_BATCH = 64

Encoder = Callable[[np.ndarray], np.ndarray]


class EncoderError(ValueError):
    """The configured ONNX audio encoder is missing, unreadable or has the wrong shape."""


@functools.cache
def _projection_matrix() -> np.ndarray:
    matrix = np.random.default_rng(PROJECTION_SEED).standard_normal((VECTOR_SIZE - 2, N_MELS * MEL_SPAN), np.float32)
    matrix.flags.writeable = False
    return matrix


def project(windows: np.ndarray) -> np.ndarray:
    """The built-in encoder, a fixed contract that the bundled parametric-mouth model reads.

    v[0] = mean of the first 4 columns (the frame's own 40 ms), v[1] = mean of the whole
    window, v[2:] = W @ window.flatten() / sqrt(1280) with W from PROJECTION_SEED.
    """
    flat = windows.reshape(len(windows), N_MELS * MEL_SPAN)
    vectors = np.empty((len(windows), VECTOR_SIZE), np.float32)
    vectors[:, ENERGY_COMPONENT] = windows[:, :, :4].mean(axis=(1, 2))
    vectors[:, 1] = flat.mean(axis=1)
    vectors[:, 2:] = flat @ _projection_matrix().T
    vectors[:, 2:] /= np.float32(np.sqrt(flat.shape[1]))
    return vectors


class AveEncoder:
    """A user-supplied ONNX audio encoder, [B,1,80,16] -> [B,512], on the CPU."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise EncoderError(f"audio encoder '{path}' does not exist")
        try:
            import onnxruntime
        except ImportError as exc:
            raise EncoderError("an ONNX audio encoder needs onnxruntime; install lipstream[cpu]") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # many sessions share the edge's cores
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's load errors share no base class narrower than Exception
            raise EncoderError(f"audio encoder '{path}' cannot be loaded: {exc}") from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        fixed_batch = inputs[0].shape[0] if inputs and isinstance(inputs[0].shape[0], int) else None
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, N_MELS, MEL_SPAN]:
            raise EncoderError(
                f"audio encoder '{path}' must take one [B,1,{N_MELS},{MEL_SPAN}] input, got {[i.shape for i in inputs]}"
            )
        if not outputs or list(outputs[0].shape[1:]) != [VECTOR_SIZE]:
            raise EncoderError(f"audio encoder '{path}' must output [B,{VECTOR_SIZE}], got {outputs[0].shape}")
        self._path = path
        self._fixed_batch = fixed_batch  # an export with a fixed batch size gets padded batches
        self._batch = fixed_batch or ENCODER_BATCH
        self._input = inputs[0].name
        self._output = outputs[0].name
        log.info("audio encoder %s loaded", path)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        vectors = np.empty((len(windows), VECTOR_SIZE), np.float32)
        for start in range(0, len(windows), self._batch):
            batch = np.ascontiguousarray(windows[start : start + self._batch, None], dtype=np.float32)
            count = len(batch)
            if self._fixed_batch and count < self._fixed_batch:
                batch = np.concatenate([batch, np.zeros((self._fixed_batch - count, *batch.shape[1:]), np.float32)])
            (result,) = self._session.run([self._output], {self._input: batch})
            if result.shape != (len(batch), VECTOR_SIZE):
                raise EncoderError(
                    f"audio encoder '{self._path}' returned shape {result.shape} for {len(batch)} windows"
                )
            vectors[start : start + count] = result[:count]
        return vectors
