from emotion.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalyzeRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    options: _common_pb2.AnalyzeOptions
    def __init__(self, image: _Optional[bytes] = ..., options: _Optional[_Union[_common_pb2.AnalyzeOptions, _Mapping]] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("faces", "image_width", "image_height", "timings", "model_version")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceResult]
    image_width: int
    image_height: int
    timings: _common_pb2.StageTimings
    model_version: str
    def __init__(self, faces: _Optional[_Iterable[_Union[_common_pb2.FaceResult, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., timings: _Optional[_Union[_common_pb2.StageTimings, _Mapping]] = ..., model_version: _Optional[str] = ...) -> None: ...

class AnalyzeBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[AnalyzeRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[AnalyzeRequest, _Mapping]]] = ...) -> None: ...

class AnalyzeBatchResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: AnalyzeResponse
    error: _common_pb2.ImageError
    def __init__(self, response: _Optional[_Union[AnalyzeResponse, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ImageError, _Mapping]] = ...) -> None: ...

class AnalyzeBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AnalyzeBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AnalyzeBatchResult, _Mapping]]] = ...) -> None: ...

class AnalyzeStreamRequest(_message.Message):
    __slots__ = ("image", "frame_id", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    frame_id: int
    options: _common_pb2.AnalyzeOptions
    def __init__(self, image: _Optional[bytes] = ..., frame_id: _Optional[int] = ..., options: _Optional[_Union[_common_pb2.AnalyzeOptions, _Mapping]] = ...) -> None: ...

class AnalyzeStreamResponse(_message.Message):
    __slots__ = ("frame_id", "faces", "timings", "error")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceResult]
    timings: _common_pb2.StageTimings
    error: _common_pb2.ImageError
    def __init__(self, frame_id: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.FaceResult, _Mapping]]] = ..., timings: _Optional[_Union[_common_pb2.StageTimings, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ImageError, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelMetrics(_message.Message):
    __slots__ = ("split", "accuracy", "accuracy_tta", "macro_f1", "ece")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_TTA_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    ECE_FIELD_NUMBER: _ClassVar[int]
    split: str
    accuracy: float
    accuracy_tta: float
    macro_f1: float
    ece: float
    def __init__(self, split: _Optional[str] = ..., accuracy: _Optional[float] = ..., accuracy_tta: _Optional[float] = ..., macro_f1: _Optional[float] = ..., ece: _Optional[float] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("name", "version", "labels", "backend", "detector", "metrics", "input_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    detector: str
    metrics: ModelMetrics
    input_size: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., detector: _Optional[str] = ..., metrics: _Optional[_Union[ModelMetrics, _Mapping]] = ..., input_size: _Optional[int] = ...) -> None: ...
