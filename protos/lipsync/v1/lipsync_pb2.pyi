from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_INT64: _ClassVar[DType]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_I420: _ClassVar[ImageFormat]
    IMAGE_FORMAT_BGR24: _ClassVar[ImageFormat]
DTYPE_UNSPECIFIED: DType
DTYPE_UINT8: DType
DTYPE_FLOAT16: DType
DTYPE_FLOAT32: DType
DTYPE_INT64: DType
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_I420: ImageFormat
IMAGE_FORMAT_BGR24: ImageFormat

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CompactInput(_message.Message):
    __slots__ = ("crop", "crop_format", "audio", "output_format")
    CROP_FIELD_NUMBER: _ClassVar[int]
    CROP_FORMAT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    crop: bytes
    crop_format: ImageFormat
    audio: bytes
    output_format: ImageFormat
    def __init__(self, crop: _Optional[bytes] = ..., crop_format: _Optional[_Union[ImageFormat, str]] = ..., audio: _Optional[bytes] = ..., output_format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class RawInput(_message.Message):
    __slots__ = ("inputs",)
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, inputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class RawOutput(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, outputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class FrameRequest(_message.Message):
    __slots__ = ("frame_id", "model", "compact", "raw", "budget_us")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COMPACT_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    BUDGET_US_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    model: str
    compact: CompactInput
    raw: RawInput
    budget_us: int
    def __init__(self, frame_id: _Optional[int] = ..., model: _Optional[str] = ..., compact: _Optional[_Union[CompactInput, _Mapping]] = ..., raw: _Optional[_Union[RawInput, _Mapping]] = ..., budget_us: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_us", "compute_us", "batch_size", "total_us")
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_US_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    queue_us: int
    compute_us: int
    batch_size: int
    total_us: int
    def __init__(self, queue_us: _Optional[int] = ..., compute_us: _Optional[int] = ..., batch_size: _Optional[int] = ..., total_us: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class FrameResult(_message.Message):
    __slots__ = ("frame_id", "mouth", "raw", "mouth_format", "timings", "error")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MOUTH_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    MOUTH_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    mouth: bytes
    raw: RawOutput
    mouth_format: ImageFormat
    timings: Timings
    error: Error
    def __init__(self, frame_id: _Optional[int] = ..., mouth: _Optional[bytes] = ..., raw: _Optional[_Union[RawOutput, _Mapping]] = ..., mouth_format: _Optional[_Union[ImageFormat, str]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[FrameRequest]
    def __init__(self, frames: _Optional[_Iterable[_Union[FrameRequest, _Mapping]]] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[FrameResult]
    def __init__(self, results: _Optional[_Iterable[_Union[FrameResult, _Mapping]]] = ...) -> None: ...

class ModelLayout(_message.Message):
    __slots__ = ("crop_size", "channel_order", "mask", "masked_first", "audio_shape", "image_input", "audio_input", "output", "lookahead_frames")
    CROP_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ORDER_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIRST_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SHAPE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INPUT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_FRAMES_FIELD_NUMBER: _ClassVar[int]
    crop_size: int
    channel_order: str
    mask: _containers.RepeatedScalarFieldContainer[int]
    masked_first: bool
    audio_shape: _containers.RepeatedScalarFieldContainer[int]
    image_input: str
    audio_input: str
    output: str
    lookahead_frames: int
    def __init__(self, crop_size: _Optional[int] = ..., channel_order: _Optional[str] = ..., mask: _Optional[_Iterable[int]] = ..., masked_first: bool = ..., audio_shape: _Optional[_Iterable[int]] = ..., image_input: _Optional[str] = ..., audio_input: _Optional[str] = ..., output: _Optional[str] = ..., lookahead_frames: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "source", "loaded", "provider", "memory_bytes", "layout", "shares_session_with")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    SHARES_SESSION_WITH_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    loaded: bool
    provider: str
    memory_bytes: int
    layout: ModelLayout
    shares_session_with: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., loaded: bool = ..., provider: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., layout: _Optional[_Union[ModelLayout, _Mapping]] = ..., shares_session_with: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("was_loaded",)
    WAS_LOADED_FIELD_NUMBER: _ClassVar[int]
    was_loaded: bool
    def __init__(self, was_loaded: bool = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Capacity(_message.Message):
    __slots__ = ("max_batch", "max_queue_delay_us", "workers", "queue_size", "max_models", "max_memory_bytes", "max_message_bytes")
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_US_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_MODELS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_batch: int
    max_queue_delay_us: int
    workers: int
    queue_size: int
    max_models: int
    max_memory_bytes: int
    max_message_bytes: int
    def __init__(self, max_batch: _Optional[int] = ..., max_queue_delay_us: _Optional[int] = ..., workers: _Optional[int] = ..., queue_size: _Optional[int] = ..., max_models: _Optional[int] = ..., max_memory_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "providers_requested", "providers_in_use", "provider_fallback_reason", "devices", "loaded_models", "capacity")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_IN_USE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    version: str
    providers_requested: _containers.RepeatedScalarFieldContainer[str]
    providers_in_use: _containers.RepeatedScalarFieldContainer[str]
    provider_fallback_reason: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    loaded_models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    capacity: Capacity
    def __init__(self, version: _Optional[str] = ..., providers_requested: _Optional[_Iterable[str]] = ..., providers_in_use: _Optional[_Iterable[str]] = ..., provider_fallback_reason: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., loaded_models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., capacity: _Optional[_Union[Capacity, _Mapping]] = ...) -> None: ...
