"""The images' Dockerfiles, checked without a Docker engine: hadolint passes, every COPY source exists in
the build context, each image carries the code its service imports, and ports, health checks and base
images agree with the services and with each other."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.manifests import DOCKER_DIR, SERVICES, env_prefix, setting_default, settings_class, tool
from tests.support import REPO_ROOT

IMAGES = (*SERVICES, "torchserve")
# Distribution names the non-ML images leave out of requirements.txt -> the modules they provide.
ML_MODULES = {
    "torch": "torch",
    "torchserve": "ts",
    "torch-model-archiver": "model_archiver",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "matplotlib": "matplotlib",
    "scikit-learn": "sklearn",
}
# Build outputs a Dockerfile may COPY although git does not hold them: path prefix -> the make target.
BUILD_OUTPUTS = {"model_store/": "mar"}


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: int  # index of the FROM this instruction belongs to (-1: before the first FROM)


def instructions(image: str) -> list[Instruction]:
    text = (DOCKER_DIR / image / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed, stage = [], -1
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        parsed.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return parsed


def exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"use the exec (JSON) form: {arguments}"
    return json.loads(arguments)


def copies(image: str) -> list[tuple[list[str], str, bool]]:
    """(sources, destination, from another stage) of every COPY/ADD."""
    result = []
    for instruction in instructions(image):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(instruction.arguments)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        result.append((paths[:-1], paths[-1], any(f.startswith("--from=") for f in flags)))
    return result


def env_values(image: str) -> dict[str, str]:
    values = {}
    for instruction in instructions(image):
        if instruction.keyword == "ENV":
            values.update(pair.split("=", 1) for pair in shlex.split(instruction.arguments))
    return values


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: a pattern matching the path or one of
    its folders excludes it; `**/` matches at any depth. fnmatch's `*` also crosses `/`, so this errs
    towards "ignored", the safe side for this check."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    for pattern in dockerignore_patterns():
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern):
                return True
            if pattern.startswith("**/"):
                tails = ["/".join(prefix.split("/")[i:]) for i in range(prefix.count("/") + 1)]
                if any(fnmatch.fnmatch(tail, pattern[3:]) for tail in tails):
                    return True
    return False


def test_dockerignore_keeps_local_state_out_but_not_sources():
    assert (
        ignored(".venv/bin/python") and ignored("var/auth.db") and ignored("services/auth/__pycache__/x.pyc")
    )
    assert ignored("runs/fer/checkpoints/last.pt") and ignored("keys/signing.pem")
    assert not ignored("services/auth/server.py") and not ignored("requirements.txt")


def test_hadolint_passes_every_dockerfile():
    dockerfiles = sorted(str(p) for p in DOCKER_DIR.glob("*/Dockerfile"))
    assert len(dockerfiles) == len(IMAGES)
    result = subprocess.run([tool("hadolint"), "--no-color", *dockerfiles], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_every_copy_source_exists_in_the_build_context(image):
    makefile = (REPO_ROOT / "Makefile").read_text()
    for sources, _destination, from_stage in copies(image):
        if from_stage:
            continue
        for source in sources:
            assert not ignored(source), f"{image}: COPY {source} is excluded by .dockerignore"
            output = next((prefix for prefix in BUILD_OUTPUTS if source.startswith(prefix)), None)
            if output:
                target = BUILD_OUTPUTS[output]
                assert re.search(rf"^{target}:", makefile, re.M), f"no `make {target}` builds {source}"
                continue
            assert list(REPO_ROOT.glob(source)), f"{image}: COPY {source}: no such file in the repository"


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned_by_digest_and_shared(image):
    parsed = instructions(image)
    (base,) = [i.arguments for i in parsed if i.keyword == "ARG" and i.stage == -1]
    name, _, reference = base.partition("=")
    assert name == "PYTHON_IMAGE" and re.fullmatch(
        r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", reference
    )
    auth_base = next(i.arguments for i in instructions("auth") if i.keyword == "ARG")
    assert base == auth_base, "all images build on the same base"
    stages = [i.arguments for i in parsed if i.keyword == "FROM"]
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    assert all(s.split()[0] == "${PYTHON_IMAGE}" for s in stages)
    assert not [i for i in parsed if i.keyword == "USER" and i.arguments.split(":")[0] in ("0", "root")]
    users = [i.arguments for i in parsed if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == "10001", (
        f"{image}: the runtime stage must end as the app user"
    )


def repo_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from package import submodule` imports a module too.
            names |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}")
            }
    return names


def module_file(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def import_closure(service: str) -> tuple[set[Path], set[str]]:
    """Repository files the service's package imports (transitively), and the outside modules they import."""
    pending = list((REPO_ROOT / "services" / service).rglob("*.py"))
    files, outside = set(), set()
    while pending:
        path = pending.pop()
        if path in files or "migrations/versions" in path.as_posix():
            continue
        files.add(path)
        for module in repo_imports(path):
            found = module_file(module)
            parent = module_file(module.rpartition(".")[0]) if "." in module else None
            if found or (parent and module.split(".")[0] in ("services", "emotion", "training")):
                pending.extend(p for p in (found, parent) if p)
            else:
                outside.add(module.split(".")[0])
    return files, outside


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_carries_the_code_its_service_imports(service):
    copied = [
        source.rstrip("/")
        for sources, _, from_stage in copies(service)
        if not from_stage
        for source in sources
    ]
    files, outside = import_closure(service)
    for path in files:
        relative = path.relative_to(REPO_ROOT).as_posix()
        assert any(relative == c or relative.startswith(c + "/") for c in copied), (
            f"{service} imports {relative}, which its image does not COPY"
        )
    if service != "inference":
        dockerfile = (DOCKER_DIR / service / "Dockerfile").read_text()
        left_out = re.search(r"grep -viE '\^\(([^)]*)\)", dockerfile).group(1).split("|")
        assert set(left_out) == set(ML_MODULES)
        assert not outside & set(ML_MODULES.values()), f"{service} imports ML packages its image leaves out"


@pytest.mark.parametrize("service", SERVICES)
def test_image_ports_entrypoint_and_health_check_match_the_service(service):
    settings = settings_class(service)
    prefix = env_prefix(settings)
    parsed = instructions(service)
    runtime = [i for i in parsed if i.stage == max(i.stage for i in parsed)]
    exposed = {int(p) for i in runtime if i.keyword == "EXPOSE" for p in i.arguments.split()}
    expected = {setting_default(settings, "port"), setting_default(settings, "metrics_port")}
    if "http_port" in settings.model_fields:
        expected.add(setting_default(settings, "http_port"))
    assert exposed == expected
    (entrypoint,) = [exec_form(i.arguments) for i in runtime if i.keyword == "ENTRYPOINT"]
    assert entrypoint == ["python", "-m", f"services.{service}"]
    assert (REPO_ROOT / "services" / service / "__main__.py").exists()
    (healthcheck,) = [i.arguments for i in runtime if i.keyword == "HEALTHCHECK"]
    command = exec_form(healthcheck.split(" CMD ", 1)[1].strip())
    assert command[-3:] == ["grpc", f"{prefix}PORT", str(setting_default(settings, "port"))]
    assert env_values(service)[f"{prefix}HOST"] == "0.0.0.0"


def test_inference_image_generates_the_torchserve_stubs_at_build_time():
    """At run time the root filesystem is read-only: stubs generated on first use would fail there."""
    from services.common.config import REPO_ROOT as SERVICES_ROOT
    from services.common.config import VAR_DIR
    from services.inference.torchserve import protos

    out_dir = protos.generate.__defaults__[0]
    assert Path(out_dir).is_relative_to(VAR_DIR) and SERVICES_ROOT == REPO_ROOT  # /app/var in the image
    runtime = [i for i in instructions("inference") if i.stage == 1]
    assert any(
        i.keyword == "RUN" and "-m services.inference.torchserve.protos" in i.arguments for i in runtime
    )


def test_torchserve_image_serves_the_archive_the_inference_service_asks_for():
    from services.inference.torchserve import build_mar

    config = (DOCKER_DIR / "torchserve" / "config.properties").read_text()
    (entrypoint,) = [exec_form(i.arguments) for i in instructions("torchserve") if i.keyword == "ENTRYPOINT"]
    name, _, archive = entrypoint[entrypoint.index("--models") + 1].partition("=")
    assert name == setting_default(settings_class("inference"), "torchserve_model")
    assert archive == f"{build_mar.DEFAULT_MODEL_NAME}.mar", "the archive `make mar` builds"
    copied = {Path(s).name for sources, _, _ in copies("torchserve") for s in sources if s.endswith(".mar")}
    assert copied == {archive}
    store = re.search(r"^model_store=(.*)$", config, re.M).group(1)
    assert entrypoint[entrypoint.index("--model-store") + 1] == store
    assert "--disable-token-auth" in entrypoint and "disable_token_authorization=true" in config
