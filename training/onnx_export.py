"""On-device exports of the shipped model: ONNX (fp32) and a statically int8-quantised ONNX.

    python -m training.onnx_export [--model models/fer_vgg.pt] [--out-dir models] [--json]

Both files take the same input as the torch model, standardised float32 (B, 1, 48, 48), and return the
7 logits (temperature NOT applied; the JSON sidecar of the .pt holds mean, std, temperature and labels).
The int8 variant is quantised with ONNX Runtime's static QDQ quantisation (per-channel int8 weights in a
7-bit range, int8 activations calibrated on 1,024 Training faces), so it runs on phone runtimes that
understand QDQ (ONNX Runtime Mobile, NNAPI/XNNPACK execution providers).

The report compares each file with the fp32 torch model on all of PublicTest: accuracy, top-1 agreement,
file size, and ONNX Runtime speed on this CPU (batch 1 latency, batch 64 throughput), and names the CPU:
int8 speed and, without 7-bit weights, int8 accuracy depend on it. --record writes the report under "onnx"
in the model's JSON sidecar, as training.export does for a release.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from training import data as D
from training.evaluate import load_split, logits_for
from training.models import MODELS_DIR, load_shipped_model

OPSET = 17
CALIBRATION_FACES = 1024


def export_onnx(model: torch.nn.Module, path: Path) -> Path:
    """fp32 ONNX with a dynamic batch axis (input "x", output "logits")."""
    # The TorchScript-based exporter: the dynamo exporter needs onnxscript, which this project doesn't ship.
    torch.onnx.export(
        model.eval(),
        torch.zeros(1, 1, 48, 48),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    return path


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray) -> Path:
    """Static QDQ int8 quantisation, activations calibrated on `calibration` (standardised (N,1,48,48))."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"x": calibration[i : i + 64]} for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self._batches, None)

    prepared = int8_path.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepared),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # 7-bit weights: x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) multiply int8 pairs with
            # VPMADDUBSW, whose pairwise sums saturate at 16 bits. There this model's full-range int8 file
            # changed 5.5% of its answers and lost 0.75 points; 7-bit weights work alike on every CPU.
            reduce_range=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    return int8_path


def session(path: Path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModule(torch.nn.Module):
    """An ONNX export behind the torch module interface (float32 (B, 1, 48, 48) -> logits), so that code
    written for the torch model (evaluation, TTA) scores the exported file as it is."""

    def __init__(self, path, threads: int = 1):
        super().__init__()
        self.session = session(Path(path), threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])


def onnx_logits(sess, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([sess.run(None, {"x": x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def speed(sess, seconds: float = 2.0) -> dict:
    """Median batch-1 latency (ms) and batch-64 throughput (faces/s) on random inputs."""
    out = {}
    for batch in (1, 64):
        x = np.random.default_rng(0).standard_normal((batch, 1, 48, 48), dtype=np.float32)
        for _ in range(5):
            sess.run(None, {"x": x})
        times, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end or len(times) < 20:
            t0 = time.perf_counter()
            sess.run(None, {"x": x})
            times.append(time.perf_counter() - t0)
        out[batch] = float(np.median(times))
    return {"batch1_ms": 1e3 * out[1], "batch64_faces_per_s": 64 / out[64]}


def weights_file(model_path=None) -> Path:
    """The weights a report is about (the shipped model by default); their .json sidecar lies beside them."""
    return Path(model_path or MODELS_DIR / "fer_vgg.pt")


def export_all(model_path=None, out_dir: Path = MODELS_DIR, data=None, threads: int = 1) -> dict:
    """Write <stem>.onnx and <stem>.int8.onnx beside the shipped weights and report on both."""
    torch.set_num_threads(threads)
    model, meta = load_shipped_model(model_path)
    weights = weights_file(model_path)
    out_dir = Path(out_dir)
    fp32_path, int8_path = out_dir / f"{weights.stem}.onnx", out_dir / f"{weights.stem}.int8.onnx"

    train = D.load_fer(data, verbose=False).split("Training")[0]
    pick = np.random.default_rng(0).choice(len(train), CALIBRATION_FACES, replace=False)
    calibration = D.normalize(train[np.sort(pick)], meta["mean"], meta["std"])
    x8, y, _ = load_split(data, "PublicTest")
    x = D.normalize(x8, meta["mean"], meta["std"])

    export_onnx(model, fp32_path)
    quantize_int8(fp32_path, int8_path, calibration)
    reference = logits_for(model, torch.from_numpy(x)).numpy()
    report = {
        "torch_fp32": {
            "accuracy": float((reference.argmax(1) == y).mean()),
            "size_mb": weights.stat().st_size / 1e6,
        }
    }
    for name, path in (("onnx_fp32", fp32_path), ("onnx_int8", int8_path)):
        sess = session(path, threads)
        logits = onnx_logits(sess, x)
        report[name] = {
            # relative to the sidecar's folder, so the record holds on any checkout
            "file": os.path.relpath(path.resolve(), weights.resolve().parent),
            "size_mb": path.stat().st_size / 1e6,
            "accuracy": float((logits.argmax(1) == y).mean()),
            "top1_agreement_with_torch": float((logits.argmax(1) == reference.argmax(1)).mean()),
            "max_abs_logit_diff": float(np.abs(logits - reference).max()),
            **speed(sess),
        }
    report.update(
        split="PublicTest", n=int(len(y)), threads=threads, onnxruntime=_ort_version(), cpu=cpu_description()
    )
    return report


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def cpu_description() -> str:
    """The CPU's model name and the vector extensions int8 kernels choose between (Linux; else platform's)."""
    import platform

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    # one block per core, all alike: the last one's fields stand for the CPU
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}
    flags = fields.get("flags", "").split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    name = fields.get("model name") or platform.machine()
    return f"{name} ({' '.join(f for f in wanted if f in flags) or 'no AVX2'})"


def record(model_path, report: dict) -> Path:
    """Store the report under "onnx" in the weights' JSON sidecar."""
    sidecar = weights_file(model_path).with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["onnx"] = report
    sidecar.write_text(json.dumps(meta, indent=1))
    return sidecar


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="weights .pt with its .json (default: the shipped model)")
    ap.add_argument("--out-dir", default=str(MODELS_DIR))
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--record", action="store_true", help='write the report under "onnx" in the model\'s .json'
    )
    a = ap.parse_args(argv)
    report = export_all(a.model, Path(a.out_dir), a.data, a.threads)
    if a.record:
        record(a.model, report)
    if a.json:
        print(json.dumps(report))
        return report
    print(f"{'file':10s} {'size MB':>8s} {'accuracy':>9s} {'agree':>7s} {'b1 ms':>7s} {'b64 faces/s':>12s}")
    for name in ("torch_fp32", "onnx_fp32", "onnx_int8"):
        r = report[name]
        print(
            f"{name:10s} {r['size_mb']:8.2f} {r['accuracy']:9.4f} "
            f"{r.get('top1_agreement_with_torch', 1):7.4f} "
            f"{r.get('batch1_ms', float('nan')):7.2f} {r.get('batch64_faces_per_s', float('nan')):12.0f}"
        )
    return report


if __name__ == "__main__":
    main()
