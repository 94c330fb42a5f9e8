import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Expression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPRESSION_UNSPECIFIED: _ClassVar[Expression]
    EXPRESSION_ANGRY: _ClassVar[Expression]
    EXPRESSION_DISGUST: _ClassVar[Expression]
    EXPRESSION_FEAR: _ClassVar[Expression]
    EXPRESSION_HAPPY: _ClassVar[Expression]
    EXPRESSION_SAD: _ClassVar[Expression]
    EXPRESSION_SURPRISE: _ClassVar[Expression]
    EXPRESSION_NEUTRAL: _ClassVar[Expression]

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_CAMERA: _ClassVar[Source]
    SOURCE_ALBUM: _ClassVar[Source]
    SOURCE_LIVE: _ClassVar[Source]
EXPRESSION_UNSPECIFIED: Expression
EXPRESSION_ANGRY: Expression
EXPRESSION_DISGUST: Expression
EXPRESSION_FEAR: Expression
EXPRESSION_HAPPY: Expression
EXPRESSION_SAD: Expression
EXPRESSION_SURPRISE: Expression
EXPRESSION_NEUTRAL: Expression
SOURCE_UNSPECIFIED: Source
SOURCE_CAMERA: Source
SOURCE_ALBUM: Source
SOURCE_LIVE: Source

class Box(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ExpressionScores(_message.Message):
    __slots__ = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    ANGRY_FIELD_NUMBER: _ClassVar[int]
    DISGUST_FIELD_NUMBER: _ClassVar[int]
    FEAR_FIELD_NUMBER: _ClassVar[int]
    HAPPY_FIELD_NUMBER: _ClassVar[int]
    SAD_FIELD_NUMBER: _ClassVar[int]
    SURPRISE_FIELD_NUMBER: _ClassVar[int]
    NEUTRAL_FIELD_NUMBER: _ClassVar[int]
    angry: float
    disgust: float
    fear: float
    happy: float
    sad: float
    surprise: float
    neutral: float
    def __init__(self, angry: _Optional[float] = ..., disgust: _Optional[float] = ..., fear: _Optional[float] = ..., happy: _Optional[float] = ..., sad: _Optional[float] = ..., surprise: _Optional[float] = ..., neutral: _Optional[float] = ...) -> None: ...

class ExpressionCounts(_message.Message):
    __slots__ = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    ANGRY_FIELD_NUMBER: _ClassVar[int]
    DISGUST_FIELD_NUMBER: _ClassVar[int]
    FEAR_FIELD_NUMBER: _ClassVar[int]
    HAPPY_FIELD_NUMBER: _ClassVar[int]
    SAD_FIELD_NUMBER: _ClassVar[int]
    SURPRISE_FIELD_NUMBER: _ClassVar[int]
    NEUTRAL_FIELD_NUMBER: _ClassVar[int]
    angry: int
    disgust: int
    fear: int
    happy: int
    sad: int
    surprise: int
    neutral: int
    def __init__(self, angry: _Optional[int] = ..., disgust: _Optional[int] = ..., fear: _Optional[int] = ..., happy: _Optional[int] = ..., sad: _Optional[int] = ..., surprise: _Optional[int] = ..., neutral: _Optional[int] = ...) -> None: ...

class FaceResult(_message.Message):
    __slots__ = ("box", "scores", "dominant", "emoji", "detection_score", "track_id")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    box: Box
    scores: ExpressionScores
    dominant: Expression
    emoji: str
    detection_score: float
    track_id: int
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., scores: _Optional[_Union[ExpressionScores, _Mapping]] = ..., dominant: _Optional[_Union[Expression, str]] = ..., emoji: _Optional[str] = ..., detection_score: _Optional[float] = ..., track_id: _Optional[int] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("decode_ms", "detect_ms", "classify_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    DETECT_MS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    detect_ms: float
    classify_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., detect_ms: _Optional[float] = ..., classify_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class AnalyzeOptions(_message.Message):
    __slots__ = ("max_faces", "whole_image_as_face", "test_time_augmentation")
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    WHOLE_IMAGE_AS_FACE_FIELD_NUMBER: _ClassVar[int]
    TEST_TIME_AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    max_faces: int
    whole_image_as_face: bool
    test_time_augmentation: bool
    def __init__(self, max_faces: _Optional[int] = ..., whole_image_as_face: _Optional[bool] = ..., test_time_augmentation: _Optional[bool] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ImageError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
