"""Serve an exported repository's compact ensemble (`lipstream models export-triton`) from NVIDIA Triton.

PyTriton (PyPI `nvidia-pytriton`) bundles Triton's server with its Python backend only, not the
onnxruntime backend, so the ensemble's steps run here with onnxruntime in the order and with the
tensor maps its config.pbtxt gives, behind Triton's own gRPC frontend, dynamic batcher and
streaming. It needs no lipstream: run it with an interpreter that has nvidia-pytriton and onnxruntime
(and whose libpython is the one PyTriton's backend stub links, e.g. Debian's python3.11):

    python triton_serve.py REPOSITORY MODEL-compact GRPC_PORT HTTP_PORT METRICS_PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from tritonclient.grpc import model_config_pb2

DTYPES = {
    model_config_pb2.TYPE_UINT8: np.uint8,
    model_config_pb2.TYPE_FP16: np.float16,
    model_config_pb2.TYPE_FP32: np.float32,
}


def read_config(repository: Path, name: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse((repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def main(repository: Path, name: str, grpc_port: int, http_port: int, metrics_port: int) -> None:
    ensemble = read_config(repository, name)
    options = ort.SessionOptions()  # as lipstream's own server runs: one thread each, no spin-waiting
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    steps = [
        (ort.InferenceSession(str(repository / step.model_name / "1" / "model.onnx"), options), step)
        for step in ensemble.ensemble_scheduling.step
    ]
    delays = [
        read_config(repository, step.model_name).dynamic_batching.max_queue_delay_microseconds for _, step in steps
    ]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        tensors = dict(inputs)
        for session, step in steps:
            feeds = {tensor: tensors[source] for tensor, source in step.input_map.items()}
            produced = session.run(list(step.output_map), feeds)
            tensors.update({step.output_map[tensor]: value for tensor, value in zip(step.output_map, produced)})
        return {output.name: tensors[output.name] for output in ensemble.output}

    def tensors(specs) -> list[Tensor]:
        return [Tensor(name=spec.name, dtype=DTYPES[spec.data_type], shape=tuple(spec.dims)) for spec in specs]

    config = TritonConfig(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=name,
            infer_func=infer,
            inputs=tensors(ensemble.input),
            outputs=tensors(ensemble.output),
            config=ModelConfig(
                max_batch_size=ensemble.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=max(delays)),
            ),
        )
        triton.serve()


if __name__ == "__main__":
    repository, name, *ports = sys.argv[1:]
    main(Path(repository), name, *(int(port) for port in ports))
