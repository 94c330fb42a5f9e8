import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from emotion.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BucketSize(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUCKET_SIZE_UNSPECIFIED: _ClassVar[BucketSize]
    BUCKET_SIZE_DAY: _ClassVar[BucketSize]
    BUCKET_SIZE_WEEK: _ClassVar[BucketSize]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSON: _ClassVar[ExportFormat]
BUCKET_SIZE_UNSPECIFIED: BucketSize
BUCKET_SIZE_DAY: BucketSize
BUCKET_SIZE_WEEK: BucketSize
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_JSON: ExportFormat

class Analysis(_message.Message):
    __slots__ = ("id", "user_id", "request_id", "captured_at", "created_at", "source", "faces", "overall", "dominant", "model_version", "thumbnail_jpeg")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_JPEG_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    request_id: str
    captured_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    source: _common_pb2.Source
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceResult]
    overall: _common_pb2.ExpressionScores
    dominant: _common_pb2.Expression
    model_version: str
    thumbnail_jpeg: bytes
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., request_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.Source, str]] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.FaceResult, _Mapping]]] = ..., overall: _Optional[_Union[_common_pb2.ExpressionScores, _Mapping]] = ..., dominant: _Optional[_Union[_common_pb2.Expression, str]] = ..., model_version: _Optional[str] = ..., thumbnail_jpeg: _Optional[bytes] = ...) -> None: ...

class RecordAnalysisRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "captured_at", "source", "faces", "overall", "model_version", "thumbnail_jpeg")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_JPEG_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    captured_at: _timestamp_pb2.Timestamp
    source: _common_pb2.Source
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceResult]
    overall: _common_pb2.ExpressionScores
    model_version: str
    thumbnail_jpeg: bytes
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.Source, str]] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.FaceResult, _Mapping]]] = ..., overall: _Optional[_Union[_common_pb2.ExpressionScores, _Mapping]] = ..., model_version: _Optional[str] = ..., thumbnail_jpeg: _Optional[bytes] = ...) -> None: ...

class RecordAnalysisResponse(_message.Message):
    __slots__ = ("analysis", "created")
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    analysis: Analysis
    created: bool
    def __init__(self, analysis: _Optional[_Union[Analysis, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListAnalysesRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token", "time_range", "source", "dominant")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    time_range: _common_pb2.TimeRange
    source: _common_pb2.Source
    dominant: _common_pb2.Expression
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.Source, str]] = ..., dominant: _Optional[_Union[_common_pb2.Expression, str]] = ...) -> None: ...

class ListAnalysesResponse(_message.Message):
    __slots__ = ("analyses", "next_page_token")
    ANALYSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    analyses: _containers.RepeatedCompositeFieldContainer[Analysis]
    next_page_token: str
    def __init__(self, analyses: _Optional[_Iterable[_Union[Analysis, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAnalysisRequest(_message.Message):
    __slots__ = ("analysis_id", "user_id")
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    analysis_id: str
    user_id: str
    def __init__(self, analysis_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class GetAnalysisResponse(_message.Message):
    __slots__ = ("analysis",)
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    analysis: Analysis
    def __init__(self, analysis: _Optional[_Union[Analysis, _Mapping]] = ...) -> None: ...

class DeleteAnalysisRequest(_message.Message):
    __slots__ = ("analysis_id",)
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    analysis_id: str
    def __init__(self, analysis_id: _Optional[str] = ...) -> None: ...

class DeleteAnalysisResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteAllForUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class DeleteAllForUserResponse(_message.Message):
    __slots__ = ("deleted_analyses",)
    DELETED_ANALYSES_FIELD_NUMBER: _ClassVar[int]
    deleted_analyses: int
    def __init__(self, deleted_analyses: _Optional[int] = ...) -> None: ...

class GetSummaryRequest(_message.Message):
    __slots__ = ("user_id", "time_range", "time_zone", "bucket_size")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SIZE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    time_range: _common_pb2.TimeRange
    time_zone: str
    bucket_size: BucketSize
    def __init__(self, user_id: _Optional[str] = ..., time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., time_zone: _Optional[str] = ..., bucket_size: _Optional[_Union[BucketSize, str]] = ...) -> None: ...

class TrendBucket(_message.Message):
    __slots__ = ("start_date", "analyses", "counts", "mean_scores")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    ANALYSES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    MEAN_SCORES_FIELD_NUMBER: _ClassVar[int]
    start_date: str
    analyses: int
    counts: _common_pb2.ExpressionCounts
    mean_scores: _common_pb2.ExpressionScores
    def __init__(self, start_date: _Optional[str] = ..., analyses: _Optional[int] = ..., counts: _Optional[_Union[_common_pb2.ExpressionCounts, _Mapping]] = ..., mean_scores: _Optional[_Union[_common_pb2.ExpressionScores, _Mapping]] = ...) -> None: ...

class GetSummaryResponse(_message.Message):
    __slots__ = ("total_analyses", "total_faces", "counts", "mean_scores", "most_frequent", "trend", "time_zone")
    TOTAL_ANALYSES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FACES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    MEAN_SCORES_FIELD_NUMBER: _ClassVar[int]
    MOST_FREQUENT_FIELD_NUMBER: _ClassVar[int]
    TREND_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    total_analyses: int
    total_faces: int
    counts: _common_pb2.ExpressionCounts
    mean_scores: _common_pb2.ExpressionScores
    most_frequent: _common_pb2.Expression
    trend: _containers.RepeatedCompositeFieldContainer[TrendBucket]
    time_zone: str
    def __init__(self, total_analyses: _Optional[int] = ..., total_faces: _Optional[int] = ..., counts: _Optional[_Union[_common_pb2.ExpressionCounts, _Mapping]] = ..., mean_scores: _Optional[_Union[_common_pb2.ExpressionScores, _Mapping]] = ..., most_frequent: _Optional[_Union[_common_pb2.Expression, str]] = ..., trend: _Optional[_Iterable[_Union[TrendBucket, _Mapping]]] = ..., time_zone: _Optional[str] = ...) -> None: ...

class ExportHistoryRequest(_message.Message):
    __slots__ = ("format",)
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    format: ExportFormat
    def __init__(self, format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class ExportHistoryResponse(_message.Message):
    __slots__ = ("content", "content_type", "filename")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    content_type: str
    filename: str
    def __init__(self, content: _Optional[bytes] = ..., content_type: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("counselor_id", "counselor_username", "organization", "granted_at", "revoked_at")
    COUNSELOR_ID_FIELD_NUMBER: _ClassVar[int]
    COUNSELOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    counselor_id: str
    counselor_username: str
    organization: str
    granted_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, counselor_id: _Optional[str] = ..., counselor_username: _Optional[str] = ..., organization: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantAccessRequest(_message.Message):
    __slots__ = ("counselor_id", "counselor_username", "organization", "client_username")
    COUNSELOR_ID_FIELD_NUMBER: _ClassVar[int]
    COUNSELOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_USERNAME_FIELD_NUMBER: _ClassVar[int]
    counselor_id: str
    counselor_username: str
    organization: str
    client_username: str
    def __init__(self, counselor_id: _Optional[str] = ..., counselor_username: _Optional[str] = ..., organization: _Optional[str] = ..., client_username: _Optional[str] = ...) -> None: ...

class GrantAccessResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: Grant
    def __init__(self, grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class RevokeAccessRequest(_message.Message):
    __slots__ = ("counselor_id",)
    COUNSELOR_ID_FIELD_NUMBER: _ClassVar[int]
    counselor_id: str
    def __init__(self, counselor_id: _Optional[str] = ...) -> None: ...

class RevokeAccessResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ...) -> None: ...

class ListClientsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Client(_message.Message):
    __slots__ = ("user_id", "granted_at", "analyses", "last_analysis_at", "username")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    ANALYSES_FIELD_NUMBER: _ClassVar[int]
    LAST_ANALYSIS_AT_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    granted_at: _timestamp_pb2.Timestamp
    analyses: int
    last_analysis_at: _timestamp_pb2.Timestamp
    username: str
    def __init__(self, user_id: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., analyses: _Optional[int] = ..., last_analysis_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., username: _Optional[str] = ...) -> None: ...

class ListClientsResponse(_message.Message):
    __slots__ = ("clients",)
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    clients: _containers.RepeatedCompositeFieldContainer[Client]
    def __init__(self, clients: _Optional[_Iterable[_Union[Client, _Mapping]]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "counselor_id", "action", "analysis_id", "occurred_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNSELOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    counselor_id: str
    action: str
    analysis_id: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., counselor_id: _Optional[str] = ..., action: _Optional[str] = ..., analysis_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
