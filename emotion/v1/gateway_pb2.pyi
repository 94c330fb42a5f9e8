import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from emotion.v1 import common_pb2 as _common_pb2
from emotion.v1 import auth_pb2 as _auth_pb2
from emotion.v1 import history_pb2 as _history_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalyzePhotoRequest(_message.Message):
    __slots__ = ("image", "source", "request_id", "captured_at", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    source: _common_pb2.Source
    request_id: str
    captured_at: _timestamp_pb2.Timestamp
    options: _common_pb2.AnalyzeOptions
    def __init__(self, image: _Optional[bytes] = ..., source: _Optional[_Union[_common_pb2.Source, str]] = ..., request_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Union[_common_pb2.AnalyzeOptions, _Mapping]] = ...) -> None: ...

class AnalyzePhotoResponse(_message.Message):
    __slots__ = ("analysis_id", "faces", "overall", "dominant", "emoji", "image_width", "image_height", "recorded", "timings", "model_version")
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    analysis_id: str
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceResult]
    overall: _common_pb2.ExpressionScores
    dominant: _common_pb2.Expression
    emoji: str
    image_width: int
    image_height: int
    recorded: bool
    timings: _common_pb2.StageTimings
    model_version: str
    def __init__(self, analysis_id: _Optional[str] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.FaceResult, _Mapping]]] = ..., overall: _Optional[_Union[_common_pb2.ExpressionScores, _Mapping]] = ..., dominant: _Optional[_Union[_common_pb2.Expression, str]] = ..., emoji: _Optional[str] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., recorded: _Optional[bool] = ..., timings: _Optional[_Union[_common_pb2.StageTimings, _Mapping]] = ..., model_version: _Optional[str] = ...) -> None: ...

class LiveRequest(_message.Message):
    __slots__ = ("frame", "frame_id", "request_id", "record")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    frame: bytes
    frame_id: int
    request_id: str
    record: bool
    def __init__(self, frame: _Optional[bytes] = ..., frame_id: _Optional[int] = ..., request_id: _Optional[str] = ..., record: _Optional[bool] = ...) -> None: ...

class LiveResponse(_message.Message):
    __slots__ = ("frame_id", "faces", "analysis_id", "error")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceResult]
    analysis_id: str
    error: _common_pb2.ImageError
    def __init__(self, frame_id: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.FaceResult, _Mapping]]] = ..., analysis_id: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ImageError, _Mapping]] = ...) -> None: ...

class DeleteAllAnalysesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteAllAnalysesResponse(_message.Message):
    __slots__ = ("deleted_analyses",)
    DELETED_ANALYSES_FIELD_NUMBER: _ClassVar[int]
    deleted_analyses: int
    def __init__(self, deleted_analyses: _Optional[int] = ...) -> None: ...

class ShareWithCounselorRequest(_message.Message):
    __slots__ = ("counselor_username",)
    COUNSELOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    counselor_username: str
    def __init__(self, counselor_username: _Optional[str] = ...) -> None: ...

class ShareWithCounselorResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: _history_pb2.Grant
    def __init__(self, grant: _Optional[_Union[_history_pb2.Grant, _Mapping]] = ...) -> None: ...
