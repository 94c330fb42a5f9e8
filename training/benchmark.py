"""CPU inference speed of the shipped model: per-face latency at batch 1, throughput at batch 64,
fp32 and bf16 (autocast), eager, TorchScript (frozen) and ONNX Runtime fp32 and int8 (if installed).

    python -m training.benchmark [--model models/fer_vgg.pt] [--threads 1] [--json]

Latency is the median over many single-image calls after warm-up (the p90 is shown too, since a
shared machine adds noise). Throughput = 64 * calls / wall time. Inputs are random: speed does not
depend on pixel values for this model.
"""

import argparse
import json
import time

import numpy as np
import torch

from training.models import load_shipped_model


@torch.inference_mode()
def bench(fn, x, seconds=3.0, warmup=10):
    for _ in range(warmup):
        fn(x)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 20:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per configuration")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, meta = load_shipped_model(a.model)
    model_cl = model.to(memory_format=torch.channels_last)
    ts = torch.jit.trace(model, torch.zeros(1, 1, 48, 48))
    ts = torch.jit.optimize_for_inference(torch.jit.freeze(ts.eval()))

    def run(m, bf16, cl):
        def f(x):
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return m(x).float()

        return f

    configs = [
        ("eager fp32", run(model, False, False)),
        ("eager fp32 channels_last", run(model_cl, False, True)),
        ("eager bf16 channels_last", run(model_cl, True, True)),
        ("torchscript fp32 frozen", run(ts, False, False)),
    ]
    try:  # ONNX Runtime: the exported files beside the weights (training/onnx_export.py), else a temp export
        import tempfile
        from pathlib import Path

        from training import onnx_export
        from training.models import SHIPPED

        weights = Path(a.model or SHIPPED)
        onnx_files = {
            "onnxruntime fp32": weights.with_suffix(".onnx"),
            "onnxruntime int8": weights.with_suffix(".int8.onnx"),
        }
        if not onnx_files["onnxruntime fp32"].exists():
            onnx_files = {
                "onnxruntime fp32": onnx_export.export_onnx(model, Path(tempfile.mkdtemp()) / "m.onnx")
            }
        for name, path in onnx_files.items():
            if path.exists():
                sess = onnx_export.session(path, a.threads)
                configs.append((name, lambda x, sess=sess: sess.run(None, {"x": x.numpy()})[0]))
    except ImportError as e:  # optional backend: report and carry on
        print(f"[benchmark] onnxruntime skipped: {e!r}"[:200])
    rows = []
    for name, fn in configs:
        t1 = bench(fn, torch.randn(1, 1, 48, 48), a.seconds)
        t64 = bench(fn, torch.randn(64, 1, 48, 48), a.seconds)
        rows.append(
            {
                "config": name,
                "threads": a.threads,
                "batch1_ms_median": 1e3 * float(np.median(t1)),
                "batch1_ms_p90": 1e3 * float(np.percentile(t1, 90)),
                "batch64_faces_per_s": 64 / float(np.median(t64)),
                "batch64_ms_per_face": 1e3 * float(np.median(t64)) / 64,
            }
        )
    if a.json:
        print(json.dumps({"arch": meta["arch"], "torch": torch.__version__, "results": rows}))
    else:
        print(f"{meta['arch']} torch {torch.__version__}, {a.threads} thread(s)")
        print(
            f"{'config':28s} {'b1 ms (median)':>15s} {'b1 ms (p90)':>12s} "
            f"{'b64 faces/s':>12s} {'b64 ms/face':>12s}"
        )
        for r in rows:
            print(
                f"{r['config']:28s} {r['batch1_ms_median']:15.2f} {r['batch1_ms_p90']:12.2f} "
                f"{r['batch64_faces_per_s']:12.0f} {r['batch64_ms_per_face']:12.3f}"
            )
    return rows


if __name__ == "__main__":
    main()
