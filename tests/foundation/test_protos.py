"""The contracts: generated code matches protos/, and every API element is documented."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

from google.protobuf import descriptor_pb2

from tests.support import REPO_ROOT

PROTO_DIR = REPO_ROOT / "protos"
GENERATED = REPO_ROOT / "emotion" / "v1"


def test_generated_code_is_up_to_date(tmp_path):
    subprocess.run([sys.executable, str(PROTO_DIR / "generate.py"), "--out", str(tmp_path)], check=True)
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "emotion" / "v1").iterdir()}
    committed = {p.name: p.read_bytes() for p in GENERATED.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make protos`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"generated code out of date with protos/ (run `make protos`): {stale}"


def _descriptor_set(tmp_path) -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    out = tmp_path / "api.pb"
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "emotion" / "v1").glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{resources.files('grpc_tools') / '_proto'}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *sources,
    ]
    assert protoc.main(args) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def test_every_element_is_commented_and_typed(tmp_path):
    undocumented, untyped, shared = [], [], []
    for f in _descriptor_set(tmp_path).file:
        assert f.package == "emotion.v1"
        comments = {tuple(loc.path): loc.leading_comments.strip() for loc in f.source_code_info.location}
        for mi, msg in enumerate(f.message_type):
            if not comments.get((4, mi)):
                undocumented.append(msg.name)
            for fi, field in enumerate(msg.field):
                if not comments.get((4, mi, 2, fi)):
                    undocumented.append(f"{msg.name}.{field.name}")
                if field.type_name in (
                    ".google.protobuf.Struct",
                    ".google.protobuf.Any",
                    ".google.protobuf.Value",
                ):
                    untyped.append(f"{msg.name}.{field.name}")
        for ei, enum in enumerate(f.enum_type):
            for vi, value in enumerate(enum.value):
                if not comments.get((5, ei, 2, vi)):
                    undocumented.append(f"{enum.name}.{value.name}")
        for si, svc in enumerate(f.service):
            for ri, rpc in enumerate(svc.method):
                if not comments.get((6, si, 2, ri)):
                    undocumented.append(f"{svc.name}.{rpc.name}")
                if rpc.input_type.endswith(("Empty",)) or rpc.output_type.endswith(("Empty",)):
                    shared.append(f"{svc.name}.{rpc.name}")
    assert not undocumented, f"elements without a comment: {undocumented}"
    assert not untyped, f"untyped fields: {untyped}"
    assert not shared, f"RPCs without their own request/response: {shared}"


def test_scores_are_named_in_fer2013_order():
    from emotion.v1 import common_pb2

    names = [f.name for f in common_pb2.ExpressionScores.DESCRIPTOR.fields]
    assert names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    enum = [v.name for v in common_pb2.Expression.DESCRIPTOR.values][1:]
    assert enum == [f"EXPRESSION_{n.upper()}" for n in names]
