"""The Kubernetes manifests, checked without a cluster: every overlay renders with `kubectl kustomize`,
validates against the Kubernetes API schema, and keeps the promises deploy/k8s/README.md makes."""

from __future__ import annotations

import base64
import functools
import os
import re
import sqlite3
import subprocess
import sys

import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    DOCKER_DIR,
    OVERLAYS,
    README,
    SERVICES,
    SERVING_KINDS,
    WORKLOAD_KINDS,
    containers,
    documented_external_secrets,
    env_of,
    env_prefix,
    find,
    name_of,
    of_kind,
    pod_labels,
    pod_spec,
    selects,
    setting_default,
    settings_class,
)

# The oldest Kubernetes the manifests support (native gRPC probes, NetworkPolicy endPort, autoscaling/v2 and
# policy/v1 are all GA there) and the newest schema kubernetes-validate carries.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
GPU = "nvidia.com/gpu"
# Which service may call which; everything else is refused by the NetworkPolicies.
EXPECTED_CALLERS = {
    "auth": {"gateway", "history"},
    "history": {"gateway", "auth"},
    "inference": {"gateway"},
    "torchserve": {"inference"},
    "postgres": {"auth", "history", "gateway"},
}


def app_of(labels: dict) -> str | None:
    return labels.get("app.kubernetes.io/name")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_objects_in_its_namespace(rendered, overlay):
    objects = rendered[overlay]
    assert objects
    namespace = "emotion-dev" if overlay == "dev" else "emotion"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, name_of(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "emotion", name_of(obj)


@pytest.fixture(scope="module")
def cached_schemas():
    """kubernetes-validate reads its (multi-megabyte) schema files again for every object: read each once."""
    with pytest.MonkeyPatch.context() as patch:
        utils = kubernetes_validate.utils
        patch.setattr(utils, "schema_contents", functools.lru_cache(maxsize=None)(utils.schema_contents))
        yield


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(rendered, cached_schemas, overlay, version):
    failures = []
    for obj in rendered[overlay]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{name_of(obj)}: {'.'.join(map(str, error.path))}: {error.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_resources_and_runs_as_non_root(rendered, overlay):
    workloads = of_kind(rendered[overlay], *WORKLOAD_KINDS)
    assert workloads
    for workload in workloads:
        pod = pod_spec(workload)
        pod_security = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, f"{name_of(workload)}: API token mounted"
        for container in containers(workload):
            where = f"{name_of(workload)} container {container['name']}"
            if workload["kind"] in SERVING_KINDS and container in pod["containers"]:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in container, f"{where}: no {probe}"
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(bound, {}), f"{where}: no {resource} {bound[:-1]}"
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, f"{where}: may run as root"
            assert security.get("runAsUser", 1) != 0, f"{where}: runs as uid 0"
            assert container["securityContext"].get("allowPrivilegeEscalation") is False, where
            assert container["securityContext"].get("readOnlyRootFilesystem") is True, where
            assert container["securityContext"].get("capabilities", {}).get("drop") == ["ALL"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_are_requested_only_by_torchserve_in_production(rendered, overlay):
    gpu_containers = {
        (workload["metadata"]["name"], container["name"])
        for workload in of_kind(rendered[overlay], *WORKLOAD_KINDS)
        for container in containers(workload)
        if any(GPU in container.get("resources", {}).get(bound, {}) for bound in ("requests", "limits"))
    }
    if overlay != "production":
        assert gpu_containers == set()
        return
    assert gpu_containers == {("torchserve", "torchserve")}
    torchserve = find(rendered[overlay], "Deployment", "torchserve")
    container = pod_spec(torchserve)["containers"][0]
    assert int(container["resources"]["limits"][GPU]) >= 1
    pod = pod_spec(torchserve)
    assert pod["nodeSelector"], "TorchServe must be pinned to GPU nodes"
    assert any(t["key"] == GPU and t.get("effect") == "NoSchedule" for t in pod["tolerations"])
    for workload in of_kind(rendered[overlay], *WORKLOAD_KINDS):
        if workload is not torchserve:
            tolerated = {t.get("key") for t in pod_spec(workload).get("tolerations", [])}
            assert GPU not in tolerated, f"{name_of(workload)} would take room on GPU nodes"


def secret_references(workload: dict) -> list[tuple[str, str | None, bool]]:
    """(secret, key or None for the whole Secret, optional) for everything a pod takes from Secrets."""
    pod = pod_spec(workload)
    refs = []
    for container in containers(workload):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.append((ref["name"], ref["key"], ref.get("optional", False)))
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                refs.append((source["secretRef"]["name"], None, source["secretRef"].get("optional", False)))
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            refs.append((volume["secret"]["secretName"], None, volume["secret"].get("optional", False)))
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                refs.append((source["secret"]["name"], None, source["secret"].get("optional", False)))
    refs.extend((s["name"], None, False) for s in pod.get("imagePullSecrets", []))
    return refs


def test_every_secret_reference_resolves_to_a_secret_in_the_overlay_or_in_the_readme(rendered):
    documented = documented_external_secrets()
    external_needed: dict[str, set[str]] = {}
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
        refs = [ref for workload in of_kind(objects, *WORKLOAD_KINDS) for ref in secret_references(workload)]
        refs += [
            (tls["secretName"], None, False)
            for ingress in of_kind(objects, "Ingress")
            for tls in ingress["spec"].get("tls", [])
        ]
        for name, key, optional in refs:
            if name in secrets:
                data = {**secrets[name].get("data", {}), **secrets[name].get("stringData", {})}
                assert key is None or key in data or optional, f"{overlay}: Secret {name} has no key {key}"
            elif overlay == "dev":
                pytest.fail(f"dev must be self-contained, but {name} is not generated by the overlay")
            else:
                keys = external_needed.setdefault(name, set())
                if key is not None:
                    keys.add(key)
    assert set(external_needed) == set(documented), (
        "the Secrets production needs from the operator and README's '## Secrets' table differ"
    )
    for name, keys in external_needed.items():
        assert keys <= documented[name], f"README's table lacks keys {keys - documented[name]} of {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_a_workload_port(rendered, overlay):
    objects = rendered[overlay]
    workloads = of_kind(objects, *SERVING_KINDS)
    for service in of_kind(objects, "Service"):
        selected = [w for w in workloads if selects(service["spec"]["selector"], pod_labels(w))]
        assert len(selected) == 1, f"{name_of(service)} selects {[name_of(w) for w in selected]}"
        ports = {
            p.get("name"): p["containerPort"] for c in pod_spec(selected[0])["containers"] for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in ports or target in ports.values(), (
                f"{name_of(service)}: no container port {target}"
            )
            assert port["port"] == ports.get(target, target), f"{name_of(service)}: {port} renumbers the port"


def test_migration_job_pods_are_selected_by_no_service(rendered):
    jobs = of_kind(rendered["production/migrations"], "Job")
    assert {j["metadata"]["name"] for j in jobs} == {"auth-migrate", "history-migrate"}
    for service in of_kind(rendered["production"], "Service"):
        for job in jobs:
            assert not selects(service["spec"]["selector"], pod_labels(job)), (name_of(service), name_of(job))


def test_migration_jobs_run_the_released_images_of_their_services(rendered):
    deployments = {d["metadata"]["name"]: d for d in of_kind(rendered["production"], "Deployment")}
    for job in of_kind(rendered["production/migrations"], "Job"):
        service = job["metadata"]["name"].removesuffix("-migrate")
        container = pod_spec(job)["containers"][0]
        assert container["args"] == ["migrate"]
        assert container["image"] == pod_spec(deployments[service])["containers"][0]["image"]
        deployment_env = env_of(pod_spec(deployments[service])["containers"][0])
        database_var = f"{env_prefix(settings_class(service))}DATABASE_URL"
        assert env_of(container)[database_var] == deployment_env[database_var]


@pytest.mark.parametrize("service", ["auth", "history"])
def test_migration_job_command_migrates_a_database_and_exits(rendered, tmp_path, service):
    """What the Job runs (the image's entrypoint `python -m services.<svc>` with its args), for real, on a
    SQLite database: it must apply the schema and exit rather than start serving."""
    job = find(rendered["production/migrations"], "Job", f"{service}-migrate")
    container = pod_spec(job)["containers"][0]
    prefix = env_prefix(settings_class(service))
    database = tmp_path / f"{service}.db"
    env = {
        **os.environ,
        f"{prefix}DATABASE_URL": f"sqlite:///{database}",
        f"{prefix}PORT": "0",  # should it serve after all, on no fixed port
        f"{prefix}METRICS_PORT": "-1",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", f"services.{service}", *container["args"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`python -m services.{service} {' '.join(container['args'])}` did not exit")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert any(t.startswith("alembic_version") for t in tables) and len(tables) > 1, tables


def grpc_port_of(service: str) -> int:
    return setting_default(settings_class(service), "port")


@pytest.mark.parametrize("overlay", ["dev", "production"])
@pytest.mark.parametrize("service", SERVICES)
def test_ports_and_probes_agree_with_the_service_settings(rendered, overlay, service):
    settings = settings_class(service)
    prefix = env_prefix(settings)
    deployment = find(rendered[overlay], "Deployment", service)
    container = pod_spec(deployment)["containers"][0]
    env = env_of(container)

    def configured(field: str) -> int:
        variable = f"{prefix}{field.upper()}"
        return int(env[variable]["value"]) if variable in env else setting_default(settings, field)

    expected = {"grpc": configured("port"), "metrics": configured("metrics_port")}
    if "http_port" in settings.model_fields:
        expected["http"] = configured("http_port")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == expected
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == expected["grpc"], f"{probe} is not the gRPC health check"
    assert env[f"{prefix}HOST"]["value"] == "0.0.0.0"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(expected["metrics"])
    service_ports = {
        p["name"]: p["port"] for p in find(rendered[overlay], "Service", service)["spec"]["ports"]
    }
    assert service_ports["grpc"] == expected["grpc"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_variable_is_a_setting_the_service_reads(rendered, overlay):
    """pydantic-settings ignores unknown variables, so a typo or a renamed setting would pass silently."""
    fields_by_prefix = {}
    for service in SERVICES:
        settings = settings_class(service)
        fields_by_prefix[env_prefix(settings)] = {f.upper() for f in settings.model_fields}
    for workload in of_kind(rendered[overlay], *WORKLOAD_KINDS):
        for container in containers(workload):
            for variable in env_of(container):
                for prefix, fields in fields_by_prefix.items():
                    if variable.startswith(prefix):
                        assert variable.removeprefix(prefix) in fields, (
                            f"{name_of(workload)}: {variable} is not a setting of the service"
                        )


def called_services(objects: list[dict]) -> set[tuple[str, str]]:
    """(caller, callee) for every address a workload is configured with: *_ADDR host:port values and the
    database URLs in the overlay's Secrets."""
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
    edges = set()
    for workload in of_kind(objects, *SERVING_KINDS):
        caller = app_of(pod_labels(workload))
        for container in containers(workload):
            for variable, entry in env_of(container).items():
                value = entry.get("value")
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] in secrets:
                    value = secrets[ref["name"]].get("stringData", {}).get(ref["key"])
                    if value is None:
                        value = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
                if not value:
                    continue
                match = re.fullmatch(r"(?:[a-z+]+://[^@/]*@)?([a-z0-9-]+):(\d+)(?:/.*)?", value)
                if variable.endswith("_ADDR") or "_URL" in variable:
                    assert match, f"{name_of(workload)}: {variable}={value!r} is not host:port"
                    host, port = match.group(1), int(match.group(2))
                    assert host in services, f"{name_of(workload)}: {variable} names no Service {host}"
                    ports = {p["port"] for p in services[host]["spec"]["ports"]}
                    assert port in ports, (
                        f"{name_of(workload)}: {variable} port {port} not in {host}'s {ports}"
                    )
                    callee = app_of(services[host]["spec"]["selector"])
                    edges.add((caller, callee))
    return edges


def allowed_callers(objects: list[dict]) -> dict[str, set[str]]:
    """{app: {apps whose pods a NetworkPolicy lets in}}, '*' for anywhere."""
    apps = {app_of(pod_labels(w)) for w in of_kind(objects, *SERVING_KINDS)}
    allowed: dict[str, set[str]] = {app: set() for app in apps}
    for policy in of_kind(objects, "NetworkPolicy"):
        targets = {
            app for app in apps if selects(policy["spec"]["podSelector"], {"app.kubernetes.io/name": app})
        }
        for rule in policy["spec"].get("ingress", []):
            sources = rule.get("from")
            for target in targets:
                if not sources:
                    allowed[target].add("*")
                    continue
                for source in sources:
                    if "namespaceSelector" in source:
                        continue  # another namespace (monitoring): not a service of this one
                    allowed[target] |= {
                        app for app in apps if selects(source["podSelector"], {"app.kubernetes.io/name": app})
                    }
    return allowed


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_network_policies_admit_exactly_the_configured_callers(rendered, overlay):
    objects = rendered[overlay]
    deny_all = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
    ]
    assert deny_all and deny_all[0]["spec"]["policyTypes"] == ["Ingress"], "no default-deny ingress policy"
    allowed = allowed_callers(objects)
    assert {app for app, callers in allowed.items() if "*" in callers} == {"gateway"}
    configured = called_services(objects)
    for caller, callee in sorted(configured):
        assert callee == "gateway" or caller in allowed[callee], (
            f"{caller} is configured to call {callee}, but may not"
        )
    for callee, callers in allowed.items():
        for caller in callers - {"*"}:
            assert (caller, callee) in configured, f"{caller} may call {callee} but is configured not to"
    assert allowed.pop("gateway") == {"*"}
    assert allowed == {app: EXPECTED_CALLERS[app] for app in allowed}


def test_metrics_ports_are_open_to_monitoring_only(rendered):
    policy = find(rendered["production"], "NetworkPolicy", "metrics-from-monitoring")
    (rule,) = policy["spec"]["ingress"]
    assert [s["namespaceSelector"] for s in rule["from"]] == [
        {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    ]
    opened = set()
    for port in rule["ports"]:
        opened |= set(range(port["port"], port.get("endPort", port["port"]) + 1))
    metrics = {setting_default(settings_class(s), "metrics_port") for s in SERVICES} | {8082}
    assert metrics <= opened and opened <= metrics | set(range(9150, 9154))


def test_dev_runs_one_cpu_replica_of_each_service_with_in_process_onnx_inference(rendered):
    objects = rendered["dev"]
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    assert {d["metadata"]["name"] for d in of_kind(objects, "Deployment")} == set(SERVICES)
    for workload in of_kind(objects, *SERVING_KINDS):
        assert workload["spec"].get("replicas", 1) == 1, name_of(workload)
    inference = env_of(pod_spec(find(objects, "Deployment", "inference"))["containers"][0])
    assert inference["INFERENCE_BACKEND"]["value"] == "onnx"
    postgres = find(objects, "StatefulSet", "postgres")
    assert postgres["spec"]["volumeClaimTemplates"], "the dev database must survive a pod restart"


def test_production_scales_spreads_and_rolls_without_losing_capacity(rendered):
    objects = rendered["production"]
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    assert set(deployments) == {*SERVICES, "torchserve"}
    autoscalers = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")
    }
    budgets = of_kind(objects, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: `replicas` would fight the autoscaler on apply"
        autoscaler = autoscalers[name]
        assert (
            autoscaler["spec"]["minReplicas"] >= 2
            and autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
        )
        metric_types = {m["type"] for m in autoscaler["spec"]["metrics"]}
        if name == "torchserve":
            assert metric_types == {"Pods"}
            metric = autoscaler["spec"]["metrics"][0]["pods"]["metric"]["name"]
            rules = (README.parent / "monitoring" / "prometheus-adapter-rules.yaml").read_text()
            assert f'as: "{metric}"' in rules, "the queue-latency metric has no prometheus-adapter rule"
        else:
            assert metric_types == {"Resource"}
            assert autoscaler["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        covering = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(deployment))]
        assert len(covering) == 1 and covering[0]["spec"].get("maxUnavailable") == 1, name
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1, name
        assert pod_spec(deployment)["topologySpreadConstraints"], name
    inference = env_of(pod_spec(deployments["inference"])["containers"][0])
    assert inference["INFERENCE_BACKEND"]["value"] == "torchserve"
    assert not of_kind(objects, "StatefulSet"), "production uses a managed database"


def test_torchserve_ports_agree_with_its_configuration(rendered):
    config = dict(
        line.split("=", 1)
        for line in (DOCKER_DIR / "torchserve" / "config.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    container = pod_spec(find(rendered["production"], "Deployment", "torchserve"))["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == int(config["grpc_inference_port"])
    assert config["inference_address"].endswith(f":{ports['http']}")
    assert config["metrics_address"].endswith(f":{ports['metrics']}")
    assert config["metrics_mode"] == "prometheus"
    inference = env_of(pod_spec(find(rendered["production"], "Deployment", "inference"))["containers"][0])
    assert inference["INFERENCE_TORCHSERVE_ADDR"]["value"] == f"torchserve:{ports['grpc']}"
    assert "INFERENCE_TORCHSERVE_MODEL" not in inference, "the model name is the image's (test_dockerfiles)"


def test_the_gateway_alone_is_exposed(rendered):
    objects = rendered["production"]
    (ingress,) = of_kind(objects, "Ingress")
    backends = {
        (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert backends == {("gateway", "http")}
    assert ingress["spec"]["tls"]
    exposed = [
        s for s in of_kind(objects, "Service") if s["spec"].get("type") in ("LoadBalancer", "NodePort")
    ]
    assert [s["metadata"]["name"] for s in exposed] == ["gateway-grpc"]
    assert [p["port"] for p in exposed[0]["spec"]["ports"]] == [grpc_port_of("gateway")]
