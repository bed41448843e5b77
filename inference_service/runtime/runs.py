"""Model runs of a batch, in a worker thread: the compact exchange and raw named tensors."""

from __future__ import annotations

import numpy as np

from inference_service.runtime.layout import CompactFrame
from inference_service.runtime.raw import BatchKey, batch_key, encode_tensor
from inference_service.runtime.registry import LoadedModel
from protos.lipsync.v1 import lipsync_pb2 as pb


def run_compact(model: LoadedModel, frames: list[CompactFrame]) -> list[bytes]:
    """Compact frames as one model run: the model's float32 layout in, 8-bit crops out."""
    output = model.session.run([model.spec.output], model.layout.build_inputs(frames))[0]
    return model.layout.encode_outputs(output, [frame.output_format for frame in frames])


def run_raw(model: LoadedModel, payloads: list[dict[str, np.ndarray]]) -> list[list[pb.Tensor]]:
    """Frames whose tensors agree beyond the batch axis run together."""
    results: dict[int, list[pb.Tensor]] = {}
    groups: dict[BatchKey, list[int]] = {}
    for index, arrays in enumerate(payloads):
        groups.setdefault(batch_key(arrays), []).append(index)
    names = model.shared.outputs
    for indices in groups.values():
        feeds = {name: np.concatenate([payloads[i][name] for i in indices]) for name in payloads[indices[0]]}
        outputs = model.session.run(names, feeds)
        offset = 0
        for i in indices:
            count = next(iter(payloads[i].values())).shape[0]
            results[i] = [encode_tensor(name, out[offset : offset + count]) for name, out in zip(names, outputs)]
            offset += count
    return [results[index] for index in range(len(payloads))]
