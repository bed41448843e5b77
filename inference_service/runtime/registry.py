"""The model registry: lazy loading, LRU eviction, one session per model file.

Models are declared in config and loaded on first use (or LoadModel). When
`max_models` or `max_memory_mb` would be exceeded, the least recently used
model is unloaded. Ids that name the same file share one onnxruntime session;
a model that fails to load raises `ModelLoadError` and touches nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from inference_service.config import InferenceConfig, ModelSpec
from inference_service.models import builtin
from inference_service.runtime.backends import on_gpu, open_session
from inference_service.runtime.compact_graph import CompactGraphError, compact_model
from inference_service.runtime.layout import CompactLayout
from inference_service.runtime.providers import ProviderChoice, SessionFactory, requested_providers
from inference_service.runtime.raw import TensorSignature, signatures

log = logging.getLogger(__name__)


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return f"unknown model '{self.args[0]}'"


class ModelLoadError(RuntimeError):
    """The model exists in config but its file cannot be opened as a session."""


def layout_key(spec: ModelSpec) -> tuple[Any, ...]:
    """The fields a compact graph is built from: ids sharing a file use it only if theirs agree."""
    fields = (
        "crop_size",
        "channel_order",
        "mask",
        "masked_first",
        "audio_shape",
        "image_input",
        "audio_input",
        "output",
    )
    return tuple(getattr(spec, name) for name in fields)


@dataclass
class SharedSession:
    """One model session, shared by every model id that names its file.

    `compact` is the same model joined to the layout graphs (I420 in, I420 out, on the model's
    device; `runtime.device_layout`), built for the layout `compact_layout`; None when off.
    """

    path: str
    session: Any
    provider: ProviderChoice
    memory_bytes: int
    inputs: dict[str, TensorSignature]
    outputs: list[str]
    users: set[str] = field(default_factory=set)
    compact: Any = None
    compact_layout: tuple[Any, ...] = ()


@dataclass
class LoadedModel:
    spec: ModelSpec
    shared: SharedSession
    layout: CompactLayout
    loaded_at: float

    @property
    def session(self) -> Any:
        return self.shared.session


class ModelRegistry:
    def __init__(
        self,
        config: InferenceConfig,
        executor: Any = None,
        session_factory: SessionFactory = ort.InferenceSession,
    ) -> None:
        self._config = config
        self._specs = {spec.id: spec for spec in config.models}
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._sessions: dict[str, SharedSession] = {}
        self._lock = asyncio.Lock()
        self._executor = executor
        self._session_factory = session_factory
        self._requested = requested_providers(config.runtime.providers)
        self.on_change: list[Any] = []

    @property
    def specs(self) -> dict[str, ModelSpec]:
        return self._specs

    @property
    def requested_providers(self) -> list[str]:
        return self._requested

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def spec(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            raise UnknownModelError(model_id) from None

    def peek(self, model_id: str) -> LoadedModel | None:
        """The loaded model, marked as just used; None when it needs loading."""
        model = self._loaded.get(model_id)
        if model is not None:
            self._loaded.move_to_end(model_id)
        return model

    async def get(self, model_id: str) -> LoadedModel:
        model = self.peek(model_id)
        if model is not None:
            return model
        spec = self.spec(model_id)
        async with self._lock:
            model = self.peek(model_id)
            if model is None:
                model = await self._load(spec)
        return model

    async def unload(self, model_id: str) -> bool:
        self.spec(model_id)
        async with self._lock:
            return self._drop(model_id)

    def _resolve_path(self, spec: ModelSpec) -> str:
        """Blocking (a built-in model is generated on first use): the model's absolute file path."""
        if spec.builtin is not None:
            try:
                return str(builtin.ensure_builtin(spec.builtin, self._config.model_dir))
            except KeyError as exc:
                raise ModelLoadError(f"model '{spec.id}': {exc.args[0]}") from exc
        path = Path(spec.path or "").expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model '{spec.id}': file not found: {path}")
        return str(path.resolve())

    def _open(self, spec: ModelSpec, path: str) -> SharedSession:
        """Blocking: open the file on the configured backend (runs in the executor)."""
        runtime = self._config.runtime
        try:
            session, provider = open_session(path, spec, runtime, self._requested, self._session_factory)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise ModelLoadError(f"model '{spec.id}': cannot load {path}: {exc}") from exc
        inputs = signatures(session.get_inputs())
        for name in (spec.image_input, spec.audio_input):
            if name not in inputs:
                raise ModelLoadError(f"model '{spec.id}': {path} has no input '{name}' (inputs: {', '.join(inputs)})")
        outputs = [arg.name for arg in session.get_outputs()]
        if spec.output not in outputs:
            raise ModelLoadError(
                f"model '{spec.id}': {path} has no output '{spec.output}' (outputs: {', '.join(outputs)})"
            )
        # The weights dominate a session's footprint; the file size is an honest lower bound.
        shared = SharedSession(path, session, provider, os.path.getsize(path), inputs, outputs)
        self._open_compact(spec, shared)
        return shared

    def _open_compact(self, spec: ModelSpec, shared: SharedSession) -> None:
        """The model joined to the layout graphs, where `runtime.device_layout` asks for it (it holds the weights
        a second time); a model that cannot be joined keeps the host layout, with a note."""
        runtime = self._config.runtime
        if runtime.device_layout == "off" or (runtime.device_layout == "auto" and not on_gpu(shared.provider)):
            return
        try:
            shared.compact, _ = open_session(
                compact_model(spec, shared.path), spec, runtime, self._requested, self._session_factory
            )
        except Exception as exc:  # noqa: BLE001 - another opset, an op torch lacks: the host layout still works
            if not isinstance(exc, CompactGraphError):
                exc = CompactGraphError(f"model '{spec.id}': the compact graph does not open: {exc}")
            note = f"device_layout off: {exc}"
            log.warning("%s", note)
            shared.provider.notes.append(note)
            return
        shared.compact_layout = layout_key(spec)
        shared.memory_bytes *= 2

    async def _load(self, spec: ModelSpec) -> LoadedModel:
        loop = asyncio.get_running_loop()
        path = await loop.run_in_executor(self._executor, self._resolve_path, spec)
        shared = self._sessions.get(path)
        if shared is None:
            started = time.perf_counter()
            shared = await loop.run_in_executor(self._executor, self._open, spec, path)
            log.info(
                "loaded model %s from %s on %s in %.0f ms",
                spec.id,
                shared.path,
                shared.provider.in_use[0],
                (time.perf_counter() - started) * 1000,
            )
        else:
            log.info("model %s shares the session of %s", spec.id, shared.path)
        # Claim the session before making room, so evicting its other users cannot drop it.
        shared.users.add(spec.id)
        self._sessions[shared.path] = shared
        self._make_room()
        model = LoadedModel(spec, shared, CompactLayout(spec), time.time())
        self._loaded[spec.id] = model
        self._notify()
        return model

    def memory_bytes(self) -> int:
        return sum(shared.memory_bytes for shared in self._sessions.values())

    def _make_room(self) -> None:
        """Evict least recently used models until one more fits (the one being loaded is not yet listed)."""
        limits = self._config.registry
        budget = int(limits.max_memory_mb * 1024 * 1024)
        while self._loaded and (len(self._loaded) + 1 > limits.max_models or self.memory_bytes() > budget):
            victim = next(iter(self._loaded))
            log.info("evicting model %s (least recently used)", victim)
            self._drop(victim)

    def _drop(self, model_id: str) -> bool:
        model = self._loaded.pop(model_id, None)
        if model is None:
            return False
        model.shared.users.discard(model_id)
        if not model.shared.users:
            self._sessions.pop(model.shared.path, None)
        self._notify()
        return True

    def _notify(self) -> None:
        for callback in self.on_change:
            callback()
