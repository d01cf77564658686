"""deploy/k8s renders with kustomize, every object is valid for Kubernetes, and the overlays
keep the promises the runbook makes (probes, limits, grace periods, publisher groups)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from herald_common.platforms.registry import PLATFORM_NAMES
from herald_common.settings import Settings
from tests.deploy.manifests import (
    K8S,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    Manifest,
    console_scripts,
    container_env,
    herald_containers,
    load_file,
    of_kind,
    pod_spec,
    render,
    schema_errors,
)

SECRET_NAME = "herald-secrets"


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    name: str = request.param
    return name, render(K8S / "overlays" / name)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid(overlay: tuple[str, list[Manifest]], version: str) -> None:
    _, manifests = overlay
    assert schema_errors(manifests, version) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_secret_template_and_examples_are_valid(version: str) -> None:
    files = [K8S / "base" / "secret.template.yaml", *sorted((K8S / "examples").glob("*.yaml"))]
    for path in files:
        assert schema_errors(load_file(path), version) == [], path


def test_a_broken_manifest_is_caught(tmp_path: Path) -> None:
    """The checks above can fail: a misspelled field and a wrong type are both reported."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    api = copy / "base" / "api.yaml"
    broken = api.read_text().replace("readinessProbe:", "readinesProbe:", 1)
    broken = broken.replace("averageUtilization: 70", "averageUtilization: seventy", 1)
    api.write_text(broken)

    errors = schema_errors(render(copy / "overlays" / "dev"), KUBERNETES_VERSIONS[0])
    assert any("Deployment/herald-api" in e and "readinesProbe" in e for e in errors), errors
    assert any("HorizontalPodAutoscaler/herald-api" in e for e in errors), errors

    (copy / "base" / "analytics.yaml").unlink()
    with pytest.raises(RuntimeError, match=r"analytics\.yaml"):
        render(copy / "overlays" / "dev")


def test_every_herald_pod_is_hardened_bounded_and_probed(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    scripts = console_scripts()
    seen = set()
    for workload, container in herald_containers(manifests):
        name = workload["metadata"]["name"]
        seen.add(container["command"][0])
        assert container["command"][0] in scripts, name
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)
        if workload["kind"] == "Deployment":
            ports = {p["name"] for p in container["ports"]}
            for probe, path in (
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ):
                assert container[probe]["httpGet"]["path"] == path, (name, probe)
                assert container[probe]["httpGet"]["port"] in ports, (name, probe)
    assert seen == {
        "herald-api",
        "herald-scheduler",
        "herald-publisher",
        "herald-analytics",
        "herald-ai-worker",
        "herald-migrate",
    }


def test_references_resolve(overlay: tuple[str, list[Manifest]]) -> None:
    name, manifests = overlay
    config_maps = {m["metadata"]["name"] for m in of_kind(manifests, "ConfigMap")}
    secrets = {m["metadata"]["name"] for m in of_kind(manifests, "Secret")}
    if name == "production":
        # Created out of band from the template; nothing secret is rendered.
        assert not secrets
        secrets = {load_file(K8S / "base" / "secret.template.yaml")[0]["metadata"]["name"]}
    for workload, container in herald_containers(manifests):
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, workload["metadata"]
            else:
                assert source["secretRef"]["name"] in secrets, workload["metadata"]

    deployments = {m["metadata"]["name"]: m for m in of_kind(manifests, "Deployment")}
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for selecting in [*of_kind(manifests, "Service"), *of_kind(manifests, "PodDisruptionBudget")]:
        selector = selecting["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert any(selector.items() <= labels.items() for labels in templates), selecting
    for hpa in of_kind(manifests, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    for scaled in of_kind(manifests, "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    # Two schedulers: safe by design (SKIP LOCKED, deterministic job ids) and kept so.
    assert deployments["herald-scheduler"]["spec"]["replicas"] == 2


def test_publisher_pods_outlive_their_graceful_shutdown(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    default = Settings.model_fields["publisher_grace_seconds"].default
    publishers = [
        (w, c) for w, c in herald_containers(manifests) if c["command"][0] == "herald-publisher"
    ]
    assert publishers
    for workload, container in publishers:
        grace = float(
            container_env(manifests, container).get("HERALD_PUBLISHER_GRACE_SECONDS", default)
        )
        period = pod_spec(workload)["terminationGracePeriodSeconds"]
        # The drain, then closing the database pool and Redis: at least 5 s more.
        assert period >= grace + 5, workload["metadata"]["name"]


def publisher_groups(manifests: list[Manifest]) -> dict[str, set[str]]:
    """Publisher Deployment name -> the platform queues it drains."""
    groups: dict[str, set[str]] = {}
    for workload, container in herald_containers(manifests):
        if container["command"][0] == "herald-publisher":
            platforms = container_env(manifests, container)["HERALD_PUBLISHER_PLATFORMS"]
            groups[workload["metadata"]["name"]] = {p.strip() for p in platforms.split(",")}
    return groups


def test_every_platform_has_exactly_one_publisher(overlay: tuple[str, list[Manifest]]) -> None:
    name, manifests = overlay
    groups = publisher_groups(manifests)
    assigned = [p for platforms in groups.values() for p in platforms]
    unknown = set(assigned) - set(PLATFORM_NAMES)
    # build_workers refuses them: the pods would crash-loop.
    assert not unknown, f"{name}: publishers name platforms Herald does not know: {unknown}"
    missing = set(PLATFORM_NAMES) - set(assigned)
    assert not missing, (
        f"{name}: no publisher drains {sorted(missing)}; their posts would never go out. Add them "
        "to HERALD_PUBLISHER_PLATFORMS in deploy/k8s/base/config.env and to a group in "
        "deploy/k8s/overlays/production/publishers/ (docs/runbook.md, 'Scaling publishers')"
    )
    assert len(assigned) == len(set(assigned)), f"{name}: a platform is in two groups: {groups}"


def test_production_runs_one_autoscaled_publisher_per_platform_group() -> None:
    manifests = render(K8S / "overlays" / "production")
    groups = publisher_groups(manifests)
    assert len(groups) >= 2, "production splits the publisher per platform group"

    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(manifests, "ScaledObject")}
    assert set(scaled) == set(groups), "every publisher group, and only those, scales on KEDA"
    hpa_targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(manifests, "HorizontalPodAutoscaler")
    }
    assert not hpa_targets & set(groups), "KEDA creates the HPA; a second one would fight it"
    deployments = {m["metadata"]["name"]: m for m in of_kind(manifests, "Deployment")}
    for deployment, scaled_object in scaled.items():
        [trigger] = scaled_object["spec"]["triggers"]
        query = trigger["metadata"]["query"]
        assert "herald_queue_ready_jobs" in query
        [pattern] = re.findall(r'platform=~"([^"]+)"', query)
        assert set(pattern.split("|")) == groups[deployment], (deployment, query)
        assert "replicas" not in deployments[deployment]["spec"], "KEDA owns the replica count"


def test_deploy_files_name_only_real_settings(overlay: tuple[str, list[Manifest]]) -> None:
    """Settings ignore unknown variables, so a misspelled one would silently do nothing."""
    _, manifests = overlay
    known = {f"HERALD_{name.upper()}" for name in Settings.model_fields}
    named: set[str] = set()
    for _, container in herald_containers(manifests):
        named |= {
            name for name in container_env(manifests, container) if name.startswith("HERALD_")
        }
    for secret in [
        *of_kind(manifests, "Secret"),
        *load_file(K8S / "base" / "secret.template.yaml"),
    ]:
        named |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert named - known == set()
