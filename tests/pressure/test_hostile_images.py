"""A thousand malformed and adversarial images (tests/pressure/hostile_corpus.py): inference answers
each with OK or INVALID_ARGUMENT (never INTERNAL, UNKNOWN or a timeout), stays up, and its memory stays
bounded; the gateway answers uploads with 200, 400 or 413, never 5xx."""

from __future__ import annotations

import asyncio
import collections
import time

import grpc
import pytest

from emotion.v1 import gateway_pb2, gateway_pb2_grpc, inference_pb2, inference_pb2_grpc
from services.common import health
from tests.pressure.api import sample_photos, upload
from tests.pressure.hostile_corpus import MIB, HostileImage, huge_upload, images

CLIENT_OPTIONS = [("grpc.max_send_message_length", 128 * MIB), ("grpc.max_receive_message_length", 128 * MIB)]
ALLOWED_INFERENCE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
RSS_GROWTH_LIMIT_MIB = 300  # a leak of even 0.3 MB per image would exceed this
CALL_TIMEOUT_S = 30.0  # far above any legitimate image; a hang is a finding


@pytest.fixture(scope="module")
def corpus() -> list[HostileImage]:
    items = images(seed=0)
    assert len(items) >= 1000
    return items


async def _analyze_all(addr: str, items: list[HostileImage], concurrency: int = 4):
    outcomes: list[tuple[HostileImage, grpc.StatusCode, str, float]] = []
    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    async with grpc.aio.insecure_channel(addr, options=CLIENT_OPTIONS) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                started = time.perf_counter()
                try:
                    await stub.Analyze(inference_pb2.AnalyzeRequest(image=item.data), timeout=CALL_TIMEOUT_S)
                    code, details = grpc.StatusCode.OK, ""
                except grpc.aio.AioRpcError as exc:
                    code, details = exc.code(), exc.details() or ""
                outcomes.append((item, code, details, time.perf_counter() - started))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def test_inference_answers_every_hostile_image_with_a_documented_status(stack, corpus):
    addr = stack.addr("inference")
    # Warm up (model, detector, allocator) so the RSS baseline is the steady state.
    await _analyze_all(
        addr, [HostileImage("warm", "valid", p, True) for p in sample_photos(8)], concurrency=2
    )
    rss_before = stack.rss_mib("inference")

    outcomes = await _analyze_all(addr, corpus)

    rss_after = stack.rss_mib("inference")
    by_code = collections.Counter(code.name for _, code, _, _ in outcomes)
    print(
        f"\n{len(outcomes)} hostile images -> {dict(by_code)}; "
        f"inference RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
    )
    slowest = sorted(outcomes, key=lambda o: -o[3])[:5]
    print("slowest:", [(o[0].name, o[1].name, round(o[3], 2)) for o in slowest])
    bad = [
        (item.name, code.name, details[:120])
        for item, code, details, _ in outcomes
        if code not in ALLOWED_INFERENCE
    ]
    assert not bad, f"{len(bad)} images got an undocumented status: {bad[:20]}"
    rejected_valid = [
        (item.name, details)
        for item, code, details, _ in outcomes
        if item.category == "valid" and code != grpc.StatusCode.OK
    ]
    assert not rejected_valid, rejected_valid
    unexplained = [
        item.name for item, code, details, _ in outcomes if code != grpc.StatusCode.OK and not details.strip()
    ]
    assert not unexplained, f"INVALID_ARGUMENT without a message: {unexplained[:10]}"
    assert stack.alive("inference"), stack.log("inference")[-3000:]
    assert health.check(addr) == "SERVING"
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MIB, (
        f"inference RSS grew {rss_before:.0f} -> {rss_after:.0f} MiB"
    )


async def test_inference_refuses_oversized_messages_without_falling_over(stack):
    addr = stack.addr("inference")
    async with grpc.aio.insecure_channel(addr, options=CLIENT_OPTIONS) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for size in (11 * MIB, 50 * MIB):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Analyze(
                    inference_pb2.AnalyzeRequest(image=huge_upload(size)), timeout=CALL_TIMEOUT_S
                )
            assert caught.value.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ), (
                size,
                caught.value.code(),
                caught.value.details(),
            )
        # A batch of hostile images: one error per bad image, in order, never a failed call.
        batch = images(seed=1)[:32]  # the documented per-call limit (INFERENCE_MAX_BATCH_IMAGES)
        reply = await stub.AnalyzeBatch(
            inference_pb2.AnalyzeBatchRequest(
                requests=[inference_pb2.AnalyzeRequest(image=i.data) for i in batch]
            ),
            timeout=120,
        )
        assert len(reply.results) == len(batch)
        for item, result in zip(batch, reply.results, strict=True):
            if result.WhichOneof("outcome") == "error":
                assert result.error.code == "INVALID_ARGUMENT", (item.name, result.error)
    assert health.check(addr) == "SERVING"


def _gateway_sample(corpus: list[HostileImage], per_category: int = 8) -> list[HostileImage]:
    seen: collections.Counter = collections.Counter()
    chosen = []
    for item in corpus:
        if seen[item.category] < per_category:
            seen[item.category] += 1
            chosen.append(item)
    return chosen


def test_gateway_answers_hostile_uploads_with_400_or_413(stack, http, account, corpus):
    rss_before = stack.rss_mib("gateway")
    statuses = collections.Counter()
    bad = []
    for item in _gateway_sample(corpus):
        reply = http.post("/api/v1/analyses", files=upload(item.data), headers=account.headers)
        statuses[reply.status_code] += 1
        if reply.status_code not in (200, 400, 413):
            bad.append((item.name, reply.status_code, reply.text[:200]))
        elif reply.status_code != 200:
            assert reply.json()["error"]["code"] in (
                "INVALID_ARGUMENT",
                "PAYLOAD_TOO_LARGE",
                "RESOURCE_EXHAUSTED",
            ), (
                item.name,
                reply.text,
            )
    # Oversized bodies: refused as 413 before they are read into memory.
    for size in (11 * MIB, 50 * MIB):
        reply = http.post("/api/v1/analyses", files=upload(huge_upload(size)), headers=account.headers)
        statuses[reply.status_code] += 1
        if reply.status_code != 413:
            bad.append((f"upload_{size // MIB}MB", reply.status_code, reply.text[:200]))
    # Malformed multipart requests.
    odd_requests = {
        "no_image_field": dict(data={"source": "SOURCE_CAMERA"}),
        "image_as_text_field": dict(data={"image": "not a file"}),
        "json_instead_of_form": dict(json={"image": "AAAA"}),
        "raw_bytes_no_boundary": dict(
            content=b"\xff\xd8garbage", headers_extra={"Content-Type": "multipart/form-data"}
        ),
        "bad_boundary": dict(
            content=b"--x\r\nbroken", headers_extra={"Content-Type": "multipart/form-data; boundary=y"}
        ),
        "bad_source": dict(files=upload(sample_photos(1)[0]), data={"source": "SOURCE_LIVE"}),
        "unknown_source": dict(files=upload(sample_photos(1)[0]), data={"source": "'; DROP TABLE x;--"}),
        "bad_captured_at": dict(files=upload(sample_photos(1)[0]), data={"captured_at": "yesterday"}),
        "huge_request_id": dict(files=upload(sample_photos(1)[0]), data={"request_id": "r" * 5000}),
        "control_request_id": dict(files=upload(sample_photos(1)[0]), data={"request_id": "a\x00\r\nb"}),
        "non_utf8_filename": dict(
            content=b'--b\r\nContent-Disposition: form-data; name="image"; filename="\xff\xfe.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n--b--\r\n",
            headers_extra={"Content-Type": "multipart/form-data; boundary=b"},
        ),
        "non_utf8_field": dict(
            content=b'--b\r\nContent-Disposition: form-data; name="source"\r\n\r\n\xc0\xaf\xff\r\n--b--\r\n',
            headers_extra={"Content-Type": "multipart/form-data; boundary=b"},
        ),
        "wrong_content_type": dict(
            files={"image": ("x.exe", sample_photos(1)[0], "application/x-msdownload")}
        ),
    }
    for name, spec in odd_requests.items():
        headers = {**account.headers, **spec.pop("headers_extra", {})}
        reply = http.post("/api/v1/analyses", headers=headers, **spec)
        statuses[reply.status_code] += 1
        if reply.status_code >= 500 or reply.status_code == 200 and name not in ("wrong_content_type",):
            bad.append((name, reply.status_code, reply.text[:200]))
    rss_after = stack.rss_mib("gateway")
    print(f"\ngateway uploads -> {dict(statuses)}; gateway RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
    assert not bad, bad
    assert stack.alive("gateway")
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MIB


async def test_gateway_grpc_refuses_oversized_photo(stack, account):
    async with grpc.aio.insecure_channel(stack.addr("gateway"), options=CLIENT_OPTIONS) as channel:
        stub = gateway_pb2_grpc.EmotionGatewayStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.AnalyzePhoto(
                gateway_pb2.AnalyzePhotoRequest(image=huge_upload(50 * MIB)),
                metadata=(("authorization", f"Bearer {account.access}"),),
                timeout=60,
            )
        assert caught.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
        # ...and the next normal call still works.
        reply = await stub.AnalyzePhoto(
            gateway_pb2.AnalyzePhotoRequest(image=sample_photos(1)[0]),
            metadata=(("authorization", f"Bearer {account.access}"),),
            timeout=60,
        )
        assert reply.analysis_id or not reply.recorded


def test_live_websocket_answers_hostile_frames_per_frame(stack, account, corpus):
    """Hostile frames in a live session: each gets its own error reply, and the session goes on."""
    import json

    import websockets.sync.client as ws_client

    frames = _gateway_sample(corpus, per_category=3)
    url = stack.http_url.replace("http://", "ws://") + f"/api/v1/live?token={account.access}&record=0"
    replies = collections.Counter()
    with ws_client.connect(url, open_timeout=20, max_size=2**22) as ws:
        for item in frames:
            if not item.data:
                continue  # an empty binary message is not a frame
            ws.send(item.data)
            reply = json.loads(ws.recv(timeout=30))
            error = reply.get("error") or {}
            replies[error.get("code") or "OK"] += 1
            assert error.get("code", "INVALID_ARGUMENT") == "INVALID_ARGUMENT", (item.name, reply)
        ws.send(b"\xff" * (3 * 2**20))  # above GATEWAY_MAX_FRAME_BYTES
        try:
            reply = json.loads(ws.recv(timeout=30))
            replies[(reply.get("error") or {}).get("code", "OK")] += 1
        except Exception as exc:  # closed with "message too big": also a clean refusal
            replies[type(exc).__name__] += 1
    print(f"\nlive hostile frames -> {dict(replies)}")
    assert stack.alive("gateway") and stack.alive("inference")
