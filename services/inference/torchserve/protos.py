"""Python stubs for TorchServe's gRPC inference API, generated on first use.

TorchServe ships its `inference.proto` only inside `ts/frontend/model-server.jar`. It is extracted from
the installed jar (so the stubs always match the installed TorchServe) and compiled with grpc_tools into
var/torchserve_grpc/ (gitignored); `google/rpc/status.proto` comes from googleapis-common-protos.
"""

from __future__ import annotations

import importlib
import sys
import threading
import zipfile
from pathlib import Path

from services.common.config import VAR_DIR

PACKAGE = "torchserve_grpc"  # a package of our own, so the generated modules cannot clash with others
_lock = threading.Lock()


def model_server_jar() -> Path:
    import ts

    jar = Path(ts.__file__).resolve().parent / "frontend" / "model-server.jar"
    if not jar.exists():
        raise FileNotFoundError(f"TorchServe's model-server.jar not found at {jar}")
    return jar


def generate(out_dir: Path = VAR_DIR / "torchserve_grpc") -> Path:
    """Extract inference.proto from the jar and compile it; return the directory to put on sys.path."""
    import google.rpc.status_pb2
    import grpc_tools
    from grpc_tools import protoc

    package_dir = out_dir / PACKAGE
    if (package_dir / "inference_pb2_grpc.py").exists():
        return out_dir
    package_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(model_server_jar()) as jar:
        (package_dir / "inference.proto").write_bytes(jar.read("proto/inference.proto"))
    (package_dir / "__init__.py").write_text("")
    googleapis_root = Path(google.rpc.status_pb2.__file__).resolve().parents[2]
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{out_dir}",
            f"-I{googleapis_root}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"{PACKAGE}/inference.proto",
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed ({status}) compiling TorchServe's inference.proto")
    return out_dir


def load_inference_stubs():
    """(inference_pb2, inference_pb2_grpc) for TorchServe's InferenceAPIsService."""
    with _lock:
        out_dir = generate()
        if str(out_dir) not in sys.path:
            sys.path.append(str(out_dir))
        pb2 = importlib.import_module(f"{PACKAGE}.inference_pb2")
        pb2_grpc = importlib.import_module(f"{PACKAGE}.inference_pb2_grpc")
    return pb2, pb2_grpc


if __name__ == "__main__":
    print(generate())
