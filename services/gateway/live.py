"""Live camera sessions, shared by the gRPC Live stream and the WebSocket.

Frames are relayed to inference's AnalyzeStream with one frame in flight: while inference works on a
frame, newer frames from the client replace each other in a one-slot buffer (latest frame wins), so a
client sending faster than inference keeps up gets fresh results instead of a growing lag. Each
inference reply (already temporally smoothed, with stable track ids) goes back to the client at once.

When the client ends the session, one summary analysis is recorded (source LIVE): per tracked face the
mean scores over the frames it appeared in, and overall the mean over frames of each frame's mean face
scores. A session in which no face was ever seen records nothing (analysis_id stays empty).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import timestamp_pb2
from prometheus_client import Counter

from emotion.v1 import common_pb2, gateway_pb2, history_pb2, inference_pb2
from services.gateway import scores
from services.gateway.core import Caller, Gateway, check_request_id
from services.gateway.errors import ApiError, from_backend

log = logging.getLogger(__name__)

LIVE_FRAMES = Counter("gateway_live_frames_total", "Live frames received, by outcome.", ["outcome"])
MAX_SUMMARY_FACES = 20


class _LatestFrame:
    """A one-slot buffer: put() replaces an untaken frame (returning True when it dropped one)."""

    def __init__(self) -> None:
        self._frame: gateway_pb2.LiveRequest | None = None
        self._closed = False
        self._changed = asyncio.Event()

    def put(self, frame: gateway_pb2.LiveRequest) -> bool:
        dropped = self._frame is not None
        self._frame = frame
        self._changed.set()
        return dropped

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def take(self) -> gateway_pb2.LiveRequest | None:
        """The newest frame, waiting for one; None once closed and empty."""
        while self._frame is None:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        frame, self._frame = self._frame, None
        return frame


@dataclass
class _Track:
    frames: int = 0
    score_sums: list[float] = field(default_factory=lambda: [0.0] * len(scores.SCORE_FIELDS))
    detection_sum: float = 0.0
    last_box: common_pb2.Box | None = None


class LiveSession:
    """One live session of one caller."""

    def __init__(self, gateway: Gateway, caller: Caller) -> None:
        self.gateway = gateway
        self.caller = caller
        self.request_id = ""
        self.record = False
        self.frames_received = 0
        self.frames_analysed = 0
        self.frames_dropped = 0
        self._frame_means: list[list[float]] = []
        self._tracks: dict[int, _Track] = {}
        self._started = timestamp_pb2.Timestamp()
        self._started.GetCurrentTime()

    async def run(
        self, requests: AsyncIterator[gateway_pb2.LiveRequest]
    ) -> AsyncIterator[gateway_pb2.LiveResponse]:
        """Responses to `requests`: one per analysed frame, then (if asked to record) the summary's id."""
        settings = self.gateway.settings
        slot = _LatestFrame()
        results: asyncio.Queue[gateway_pb2.LiveResponse] = asyncio.Queue()
        stream = self.gateway.backends.inference.stub.AnalyzeStream(timeout=settings.live_max_seconds)

        async def read_client() -> None:
            try:
                async for request in requests:
                    if self.frames_received == 0 and not self.request_id:
                        self.request_id = check_request_id(request.request_id)
                        self.record = request.record
                        if self.record:
                            self.gateway.require_user(self.caller)
                    if not request.frame:
                        continue  # a control message (e.g. only request_id and record)
                    self.frames_received += 1
                    if len(request.frame) > settings.max_frame_bytes:
                        LIVE_FRAMES.labels("too_large").inc()
                        results.put_nowait(
                            gateway_pb2.LiveResponse(
                                frame_id=request.frame_id,
                                error=common_pb2.ImageError(
                                    code="INVALID_ARGUMENT",
                                    message=f"frame is larger than {settings.max_frame_bytes} bytes",
                                ),
                            )
                        )
                        continue
                    if slot.put(request):
                        self.frames_dropped += 1
                        LIVE_FRAMES.labels("dropped").inc()
            finally:
                slot.close()

        async def pump() -> None:
            first = True
            while (frame := await slot.take()) is not None:
                message = inference_pb2.AnalyzeStreamRequest(image=frame.frame, frame_id=frame.frame_id)
                if first:
                    message.options.max_faces = MAX_SUMMARY_FACES
                    first = False
                await stream.write(message)
                reply = await stream.read()
                if reply is grpc.aio.EOF:
                    raise ApiError(grpc.StatusCode.UNAVAILABLE, "the inference service ended the live stream")
                LIVE_FRAMES.labels("analysed").inc()
                self.frames_analysed += 1
                self._accumulate(reply)
                response = gateway_pb2.LiveResponse(frame_id=reply.frame_id, faces=reply.faces)
                if reply.HasField("error"):
                    response.error.CopyFrom(reply.error)
                results.put_nowait(response)
            await stream.done_writing()

        reader = asyncio.create_task(read_client(), name="live-read")
        pumper = asyncio.create_task(pump(), name="live-pump")
        try:
            while True:
                getter = asyncio.ensure_future(results.get())
                done, _ = await asyncio.wait({getter, pumper}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                try:
                    pumper.result()
                except grpc.aio.AioRpcError as exc:
                    raise from_backend(exc, "inference") from None
                while not results.empty():
                    yield results.get_nowait()
                break
            await reader  # raises what the client's stream raised (e.g. a bad request_id)
            log.info(
                "live session ended",
                extra={
                    "frames_received": self.frames_received,
                    "frames_analysed": self.frames_analysed,
                    "frames_dropped": self.frames_dropped,
                },
            )
            if self.record:
                yield gateway_pb2.LiveResponse(analysis_id=await self._record_summary())
        finally:
            for task in (reader, pumper):
                task.cancel()
            stream.cancel()

    def _accumulate(self, reply: inference_pb2.AnalyzeStreamResponse) -> None:
        if reply.HasField("error") or not reply.faces:
            return
        vectors = [scores.as_vector(face.scores) for face in reply.faces]
        self._frame_means.append(scores.mean(vectors))
        for face, vector in zip(reply.faces, vectors, strict=False):
            track = self._tracks.get(face.track_id)
            if track is None:
                if len(self._tracks) >= MAX_SUMMARY_FACES:
                    continue
                track = self._tracks[face.track_id] = _Track()
            track.frames += 1
            track.score_sums = [a + b for a, b in zip(track.score_sums, vector, strict=False)]
            track.detection_sum += face.detection_score
            track.last_box = face.box

    def summary(self) -> history_pb2.RecordAnalysisRequest | None:
        """The session's summary record, or None when no face was seen."""
        if not self._frame_means:
            return None
        faces = []
        for track_id, track in self._tracks.items():
            mean_scores = [s / track.frames for s in track.score_sums]
            expression = scores.dominant(mean_scores)
            faces.append(
                common_pb2.FaceResult(
                    box=track.last_box,
                    scores=scores.from_vector(mean_scores),
                    dominant=expression,
                    emoji=scores.emoji(expression),
                    detection_score=track.detection_sum / track.frames,
                    track_id=track_id,
                )
            )
        faces.sort(key=lambda f: f.box.width * f.box.height, reverse=True)
        return history_pb2.RecordAnalysisRequest(
            request_id=self.request_id,
            user_id=self.caller.user_id,
            captured_at=self._started,
            source=common_pb2.SOURCE_LIVE,
            faces=faces,
            overall=scores.from_vector(scores.mean(self._frame_means)),
        )

    async def _record_summary(self) -> str:
        record = self.summary()
        if record is None:
            return ""
        record.model_version = await self.gateway.model_version()
        outcome = await self.gateway.record(self.caller, record)
        return outcome.analysis_id
