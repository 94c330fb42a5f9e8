"""The ONNX Runtime backend (INFERENCE_BACKEND=onnx): the same probabilities as the torch model from the
fp32 export, the same answers from the int8 file for nearly every face, and a real service serving it."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from emotion.v1 import inference_pb2, inference_pb2_grpc
from tests.inference.conftest import assert_same_analyses, square_photos
from tests.support import ServiceProcess, free_port
from training.models import native_bf16


@pytest.fixture(scope="module")
def onnx_files(model_weights, crops, tmp_path_factory):
    """(fp32, int8) ONNX files of the weights under test: the shipped int8 file beside shipped weights, the
    fp32 export always made afresh (so it matches the weights even for a stand-in model)."""
    import torch

    from training import data as D
    from training.models import load_shipped_model
    from training.onnx_export import export_onnx, quantize_int8

    out = tmp_path_factory.mktemp("onnx")
    model, meta = load_shipped_model(str(model_weights))
    fp32 = export_onnx(model, out / "model.onnx")
    int8 = model_weights.with_suffix(".int8.onnx")
    if not int8.exists():
        calibration = D.normalize(crops, meta["mean"], meta["std"])
        int8 = quantize_int8(fp32, out / "model.int8.onnx", calibration)
    torch.set_num_threads(1)
    return fp32, int8


@pytest.fixture(scope="module")
def torch_classifier(model_weights):
    from services.inference.classify import InProcessClassifier, ModelCard
    from training.models import load_shipped_model

    model, meta = load_shipped_model(str(model_weights))
    return InProcessClassifier(model, ModelCard.from_meta(meta), bf16=False)


@pytest.mark.parametrize("tta", [False, True])
def test_fp32_onnx_scores_like_the_torch_model(onnx_files, torch_classifier, crops, tta):
    from services.inference.classify import OnnxClassifier

    onnx = OnnxClassifier(str(onnx_files[0]), torch_classifier.card).predict(crops, tta)
    local = torch_classifier.predict(crops, tta)
    assert onnx.shape == local.shape == (len(crops), 7)
    np.testing.assert_allclose(onnx.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(onnx, local, atol=1e-4, rtol=0)


def test_int8_onnx_gives_the_torch_models_answer_for_nearly_every_face(onnx_files, torch_classifier, crops):
    from services.inference.classify import OnnxClassifier

    int8 = OnnxClassifier(str(onnx_files[1]), torch_classifier.card, threads=2).predict(crops)
    local = torch_classifier.predict(crops)
    assert (int8.argmax(1) == local.argmax(1)).mean() >= 0.9
    assert np.abs(int8 - local).max() < 0.2  # quantisation noise, not a different model
    assert len(OnnxClassifier(str(onnx_files[1]), torch_classifier.card).predict(crops[:0])) == 0


def test_a_missing_onnx_file_stops_start_up_with_a_clear_message(model_weights, tmp_path):
    from services.inference.server import InferenceSettings, open_engine

    settings = InferenceSettings(
        model_path=str(model_weights), backend="onnx", onnx_path=str(tmp_path / "absent.onnx")
    )
    with pytest.raises(FileNotFoundError, match="absent.onnx not found .set INFERENCE_ONNX_PATH"):
        asyncio.run(open_engine(settings))


def test_service_on_the_onnx_backend_reports_it_and_answers_like_torch(
    inference, onnx_files, model_weights, tmp_path
):
    port = free_port()
    env = {
        "INFERENCE_PORT": str(port),
        "INFERENCE_METRICS_PORT": "-1",
        "INFERENCE_MODEL_PATH": str(model_weights),
        "INFERENCE_BACKEND": "onnx",
        "INFERENCE_ONNX_PATH": str(onnx_files[0]),
        "INFERENCE_LOG_LEVEL": "INFO",
    }
    process = ServiceProcess("services.inference", env, tmp_path / "onnx.log", port).wait_serving(
        timeout_s=180
    )
    try:
        onnx_stub = inference_pb2_grpc.InferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        torch_stub = inference[0]
        info = onnx_stub.GetModelInfo(inference_pb2.GetModelInfoRequest(), timeout=10)
        assert info.backend == "onnx"
        assert (
            info.version == torch_stub.GetModelInfo(inference_pb2.GetModelInfoRequest(), timeout=10).version
        )
        # the torch service autocasts to bf16 where the CPU has it natively and measures it faster (bf16
        # rounds to ~3 significant digits); elsewhere both backends compute in fp32
        atol = 2e-2 if native_bf16() else 1e-3
        assert_same_analyses(torch_stub, onnx_stub, square_photos(4), atol=atol)
    finally:
        process.stop()
