"""Opening a model on the configured backend, with the GPU settings that apply there and notes for those that do not.

onnxruntime: the providers with their CPU fall-back (`providers`), the NVIDIA libraries
preloaded first, I/O bindings and CUDA graphs when asked. torch: the same model in PyTorch, on
the GPU when one is asked for and torch sees it, else on the CPU with the reason. A setting
that cannot apply (CUDA graphs on the CPU, say) never fails a load: it is ignored, logged, and
listed in the choice's `notes`.
"""

from __future__ import annotations

import logging
from typing import Any

import onnx
import onnxruntime as ort

from inference_service.config import ModelSpec, RuntimeConfig
from inference_service.runtime import nvidia
from inference_service.runtime.binding import BoundSession
from inference_service.runtime.providers import CPU, ORT_NAMES, ProviderChoice, SessionFactory, create_session

log = logging.getLogger(__name__)

CUDA = ORT_NAMES["cuda"]
GPU_IN_USE = {CUDA, ORT_NAMES["tensorrt"], "TorchCUDA"}
ModelSource = str | onnx.ModelProto  # a file, or a graph built in memory (the compact graph)


def on_gpu(choice: ProviderChoice) -> bool:
    return choice.in_use[0] in GPU_IN_USE


def open_session(
    model: ModelSource,
    spec: ModelSpec,
    runtime: RuntimeConfig,
    requested: list[str],
    session_factory: SessionFactory = ort.InferenceSession,
) -> tuple[Any, ProviderChoice]:
    if runtime.backend == "torch":
        session, choice = _open_torch(model, spec, runtime, requested)
    else:
        session, choice = _open_onnxruntime(model, runtime, requested, session_factory)
    for note in choice.notes:
        log.warning("model %s: %s", spec.id, note)
    return session, choice


def _open_onnxruntime(
    model: ModelSource, runtime: RuntimeConfig, requested: list[str], session_factory: SessionFactory
) -> tuple[Any, ProviderChoice]:
    nvidia.preload(ort, runtime.preload_nvidia_libraries)
    source = model if isinstance(model, str) else model.SerializeToString()

    def create(cuda_graphs: bool) -> tuple[Any, ProviderChoice]:
        return create_session(
            source,
            requested,
            device_id=runtime.device_id,
            intra_op_threads=runtime.intra_op_threads,
            allow_spinning=runtime.allow_spinning,
            cuda_graphs=cuda_graphs,
            session_factory=session_factory,
        )

    session, choice = create(runtime.cuda_graphs)
    notes = []
    cuda_offered = CUDA in requested and CUDA in ort.get_available_providers()
    if runtime.cuda_graphs and cuda_offered and choice.in_use[0] != CUDA:
        # CUDA graphs need every node on the CUDA provider: a model that cannot gets plain CUDA runs.
        session, choice = create(False)
        if choice.in_use[0] == CUDA:
            notes.append("cuda_graphs: the CUDA provider cannot capture this model; it runs without CUDA graphs")
    graphs = runtime.cuda_graphs and choice.in_use[0] == CUDA and not notes
    if runtime.cuda_graphs and choice.in_use[0] != CUDA:
        notes.append(
            f"cuda_graphs ignored: they need onnxruntime's CUDA provider, this model runs on {choice.in_use[0]}"
        )
    if runtime.io_binding or graphs:
        device = "cuda" if choice.in_use[0] in (CUDA, ORT_NAMES["tensorrt"]) else "cpu"
        session = BoundSession(session, device, runtime.device_id, cuda_graphs=graphs)
        if device == "cpu":
            notes.append("io_binding on the CPU: buffers are reused, nothing is pinned (no device copies to save)")
    choice.notes.extend(notes)
    return session, choice


def _open_torch(
    model: ModelSource, spec: ModelSpec, runtime: RuntimeConfig, requested: list[str]
) -> tuple[Any, ProviderChoice]:
    import torch  # the torch extra: only a torch backend pays for the import

    from inference_service.runtime import torch_session

    want_gpu = any(name != CPU for name in requested)
    reason, notes = "", []
    if want_gpu and torch.cuda.is_available():
        device = f"cuda:{runtime.device_id}"
    else:
        device = "cpu"
        if want_gpu:
            build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
            reason = f"torch {torch.__version__} ({build}): the torch backend runs on the CPU"
    on_cuda = device != "cpu"
    precision = runtime.torch_precision
    dtype = torch.float16 if precision == "fp16" or (precision == "auto" and on_cuda) else torch.float32
    if runtime.intra_op_threads:
        torch.set_num_threads(runtime.intra_op_threads)
    if isinstance(model, str):
        module, inputs, outputs = torch_session.load_module(model, spec)
    else:
        module, inputs, outputs = torch_session.load_graph(model)
    if runtime.cuda_graphs and not on_cuda:
        notes.append("cuda_graphs ignored: the torch backend runs on the CPU")
    if runtime.io_binding and not on_cuda:
        notes.append("io_binding on the CPU: nothing to pin (no device copies)")
    session = torch_session.TorchSession(
        module, inputs, outputs, device, dtype, pinned=runtime.io_binding, cuda_graphs=runtime.cuda_graphs
    )
    if reason:
        log.warning("model %s: %s", spec.id, reason)
    return session, ProviderChoice(requested, session.get_providers(), reason, notes)
