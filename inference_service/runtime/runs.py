"""Model runs of a batch, in a worker thread: the compact exchange and raw named tensors."""

from __future__ import annotations

import numpy as np

from inference_service.runtime import compact_graph
from inference_service.runtime.layout import I420, CompactFrame
from inference_service.runtime.raw import BatchKey, batch_key, encode_tensor
from inference_service.runtime.registry import LoadedModel, layout_key
from protos.lipsync.v1 import lipsync_pb2 as pb


def run_compact(model: LoadedModel, frames: list[CompactFrame]) -> list[bytes]:
    """Compact frames as one model run: the model's float32 layout in, 8-bit crops out.

    With the compact graph (`runtime.device_layout`), I420 frames go in as they came and the
    layout is done on the model's device; the answer is the same bytes.
    """
    shared = model.shared
    if (
        shared.compact is not None
        and shared.compact_layout == layout_key(model.spec)
        and all(frame.crop_format == I420 and frame.output_format == I420 for frame in frames)
    ):
        return _run_compact_graph(model, frames)
    output = model.session.run([model.spec.output], model.layout.build_inputs(frames))[0]
    return model.layout.encode_outputs(output, [frame.output_format for frame in frames])


def _run_compact_graph(model: LoadedModel, frames: list[CompactFrame]) -> list[bytes]:
    size, count = model.spec.crop_size, len(frames)
    crops = np.frombuffer(b"".join(frame.crop for frame in frames), np.uint8).reshape(count, size * 3 // 2, size)
    audio = np.frombuffer(b"".join(frame.audio for frame in frames), np.float16).reshape(count, -1)
    feeds = dict(zip(compact_graph.INPUTS, (crops, audio)))
    mouths = model.shared.compact.run([compact_graph.OUTPUT], feeds)[0]
    return [mouth.tobytes() for mouth in mouths]


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
