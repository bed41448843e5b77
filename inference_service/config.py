"""Inference service configuration (configs/inference.yaml); every field has a default."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from inference_service.models.builtin import BUILTIN_MODELS
from lipstream import contract
from lipstream.config import StrictModel, load_config

ProviderName = Literal["tensorrt", "cuda", "cpu"]


class ServerConfig(StrictModel):
    host: str = Field("127.0.0.1", description="loopback unless configured: '[::]' serves every interface")
    port: int = Field(50051, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(9151, ge=0, le=65535, description="null disables; 0 picks a free port")
    admin_token: str | None = Field(
        None, description="LoadModel/UnloadModel need 'authorization: Bearer TOKEN'; null turns them off"
    )
    max_message_mb: float = Field(16.0, gt=0, le=1024)
    grace_s: float = Field(5.0, ge=0, description="time given to in-flight calls on shutdown")


class RuntimeConfig(StrictModel):
    """Execution providers: `auto` tries TensorRT, CUDA, then CPU, as the build offers them."""

    providers: Literal["auto"] | list[ProviderName] = "auto"
    device_id: int = Field(0, ge=0)
    intra_op_threads: int = Field(0, ge=0, description="0 lets onnxruntime decide")
    allow_spinning: bool = Field(
        False, description="let idle intra-op threads spin: lower latency, but a core burnt even when idle"
    )
    backend: Literal["onnxruntime", "torch"] = Field(
        "onnxruntime", description="torch runs the same ONNX models (or TorchScript / torch.export files) in PyTorch"
    )
    torch_precision: Literal["auto", "fp32", "fp16"] = Field(
        "auto", description="torch backend: auto = fp16 on CUDA, fp32 on the CPU"
    )
    preload_nvidia_libraries: bool = Field(
        True, description="load CUDA/cuDNN from the nvidia-* wheels (onnxruntime.preload_dlls) before a session"
    )
    io_binding: bool = Field(
        False, description="run through I/O bindings with buffers reused per batch size (pinned host memory on CUDA)"
    )
    cuda_graphs: bool = Field(
        False, description="capture one CUDA graph per batch size (CUDA only; ignored with a warning elsewhere)"
    )
    device_layout: Literal["auto", "on", "off"] = Field(
        "auto",
        description="compact layout (I420 <-> the model's floats) in the model's graph on its device; auto = on a GPU",
    )


class BatchingConfig(StrictModel):
    max_batch: int = Field(8, ge=1, le=256)
    max_queue_delay_us: int = Field(2000, ge=0, le=1_000_000)
    workers: int = Field(1, ge=1, le=64)
    queue_size: int = Field(256, ge=1, le=100_000)


class RegistryConfig(StrictModel):
    max_models: int = Field(4, ge=1)
    max_memory_mb: float = Field(4096.0, gt=0)
    preload: list[str] = Field(default_factory=lambda: ["parametric-mouth"])


class ModelSpec(StrictModel):
    """One servable model: its file (or built-in name) and its tensor layout (default: `lipstream.contract`)."""

    id: str = Field(min_length=1)
    path: str | None = None
    builtin: str | None = None
    image_input: str = contract.IMAGE_INPUT
    audio_input: str = contract.AUDIO_INPUT
    output: str = contract.OUTPUT
    crop_size: int = Field(contract.MODEL_CROP, ge=8, le=2048)
    channel_order: Literal["BGR", "RGB"] = contract.CHANNEL_ORDER
    mask: tuple[int, int, int, int] = contract.MASK
    masked_first: bool = False
    audio_shape: tuple[int, ...] = contract.AUDIO_WINDOW_SHAPE
    lookahead_frames: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.path is None) == (self.builtin is None):
            raise ValueError(f"model '{self.id}' needs exactly one of 'path' or 'builtin'")
        if self.crop_size % 2:
            raise ValueError(f"model '{self.id}': crop_size must be even (I420 crops)")
        x0, y0, x1, y1 = self.mask
        if not (0 <= x0 <= x1 < self.crop_size and 0 <= y0 <= y1 < self.crop_size):
            raise ValueError(f"model '{self.id}': mask {self.mask} is outside the {self.crop_size} crop")
        return self

    @property
    def source(self) -> str:
        return self.path if self.path is not None else f"builtin:{self.builtin}"


def _default_models() -> list[ModelSpec]:
    return [
        ModelSpec(id=name, builtin=name, lookahead_frames=model.lookahead_frames)
        for name, model in BUILTIN_MODELS.items()
    ]


class InferenceConfig(StrictModel):
    server: ServerConfig = Field(default_factory=ServerConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    models: list[ModelSpec] = Field(default_factory=_default_models)
    model_dir: Path | None = Field(None, description="where built-in models are generated")

    @field_validator("models")
    @classmethod
    def _unique_ids(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        seen: set[str] = set()
        for spec in models:
            if spec.id in seen:
                raise ValueError(f"duplicate model id '{spec.id}'")
            seen.add(spec.id)
        return models

    @model_validator(mode="after")
    def _preload_known(self) -> InferenceConfig:
        ids = {spec.id for spec in self.models}
        for model_id in self.registry.preload:
            if model_id not in ids:
                raise ValueError(f"registry.preload names unknown model '{model_id}'")
        return self


ENV_PREFIX = "LIPSTREAM_INFERENCE_"


def load_inference_config(path: Path | None, overrides: dict[str, object] | None = None) -> InferenceConfig:
    return load_config(InferenceConfig, path, ENV_PREFIX, overrides)
