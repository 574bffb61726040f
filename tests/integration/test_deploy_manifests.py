"""The deployment files pass deploy/validate.sh, and the validator really rejects bad ones.

deploy/validate.sh checks docker-compose.yml with `docker-compose config`, renders the
kustomize base and production overlay and validates every object (strict) with kubeconform
against the Kubernetes, Strimzi and CloudNativePG schemas, offline. Its tools and schemas
are installed once into ~/.cache/teamnl/tools (the first run takes about a minute).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VALIDATE = REPO / "deploy" / "validate.sh"


def run_validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(VALIDATE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def copy_k8s(tmp_path: Path) -> Path:
    target = tmp_path / "k8s"
    shutil.copytree(REPO / "deploy" / "k8s", target)
    return target


def test_repository_deploy_files_are_valid() -> None:
    result = run_validate()
    assert result.returncode == 0, output(result)
    # base + production overlay (28 objects each today): every one valid, none skipped.
    summary = re.search(
        r"Summary: (\d+) resources found in 2 files - Valid: (\d+), Invalid: 0, "
        r"Errors: 0, Skipped: 0",
        result.stdout,
    )
    assert summary, output(result)
    assert int(summary[1]) == int(summary[2]) >= 50


def test_deployment_with_string_replicas_is_rejected(tmp_path: Path) -> None:
    k8s = copy_k8s(tmp_path)
    manifest = k8s / "base" / "services" / "nlib.yaml"
    text = manifest.read_text()
    assert "\n  replicas: 2\n" in text
    manifest.write_text(text.replace("\n  replicas: 2\n", '\n  replicas: "three"\n', 1))

    result = run_validate("--no-compose", str(k8s / "base"))

    assert result.returncode != 0, output(result)
    assert "Deployment teamnl-nlib is invalid" in result.stdout, output(result)
    assert "/spec/replicas" in result.stdout


def test_kafka_topic_with_wrong_types_and_unknown_field_is_rejected(tmp_path: Path) -> None:
    k8s = copy_k8s(tmp_path)
    topics = k8s / "base" / "kafka" / "topics.yaml"
    text = topics.read_text()
    assert text.count("  partitions: 6\n") == 5
    # a string where the Strimzi CRD wants an integer, and a misspelt field
    text = text.replace("  partitions: 6\n", "  partitions: six\n", 1)
    text = text.replace("  replicas: 3\n", "  replica: 3\n", 1)
    topics.write_text(text)

    result = run_validate("--no-compose", str(k8s / "overlays" / "production"))

    assert result.returncode != 0, output(result)
    assert "KafkaTopic teamnl-nlib-events is invalid" in result.stdout, output(result)
    assert "/spec/partitions" in result.stdout or "'replica' not allowed" in result.stdout


def test_kind_without_a_schema_is_an_error_not_a_skip(tmp_path: Path) -> None:
    manifest = tmp_path / "unknown.yaml"
    manifest.write_text(
        "apiVersion: example.org/v1\nkind: Gadget\nmetadata:\n  name: g\nspec: {}\n"
    )

    result = run_validate("--no-compose", str(manifest))

    assert result.returncode != 0, output(result)
    assert "could not find schema for Gadget" in result.stdout, output(result)


def test_broken_compose_file_is_rejected(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    text = (REPO / "docker-compose.yml").read_text()
    assert "condition: service_healthy" in text
    compose.write_text(text.replace("condition: service_healthy", "condition: service_happy", 1))

    result = run_validate("--compose", str(compose))

    assert result.returncode != 0, output(result)
    assert "service_happy" in output(result), output(result)
    assert "invalid" in output(result)


# ---- consistency of the observability files (what the two validators above do not see) ----
METRICS = (
    "teamnl_events_accepted_total",
    "teamnl_events_rejected_total",
    "teamnl_outbox_backlog",
    "teamnl_outbox_oldest_age_seconds",
    "teamnl_consumer_lag",
    "teamnl_end_to_end_latency_seconds_bucket",
    "teamnl_ingestion_group_size_sum",
    "teamnl_deadletter_total",
    "teamnl_findings_open",
)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_grafana_dashboard_covers_the_metrics_and_uses_provisioned_datasources() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/teamnl.json").read_text())
    datasources = load_yaml(REPO / "deploy/grafana/provisioning/datasources/datasources.yaml")[
        "datasources"
    ]
    uids = {d["uid"] for d in datasources}
    exprs = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        exprs += [t["expr"] for t in panel["targets"]]
    for metric in METRICS:
        assert any(metric in e for e in exprs), metric
    provider = load_yaml(REPO / "deploy/grafana/provisioning/dashboards/dashboards.yaml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_collector_pipelines_use_declared_components_and_prometheus_scrapes_all() -> None:
    collector = load_yaml(REPO / "deploy/otel-collector.yaml")
    pipelines = collector["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["otlp/jaeger"]
    assert "prometheus" in pipelines["metrics"]["exporters"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in collector[kind], f"{kind}: {name}"
    targets = {
        t
        for job in load_yaml(REPO / "deploy/prometheus.yml")["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert {"nlib:8101", "tinl:8102", "werkplaats:8103", "dashboard:8100"} <= targets
    assert "otel-collector:8889" in targets


VENV_BIN = Path(sys.executable).parent


def test_compose_start_order_is_health_checked() -> None:
    services = load_yaml(REPO / "docker-compose.yml")["services"]
    for infra in ("kafka", "postgres"):
        assert "healthcheck" in services[infra]
    for name in ("nlib", "tinl", "werkplaats", "dashboard"):
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
    seed = services["seed"]
    script = " ".join(seed["command"])
    assert "teamnl seed" in script and "teamnl members create" in script
    for words in (["seed"], ["members", "create"]):  # the commands it runs exist, as written
        result = subprocess.run(
            [str(VENV_BIN / "teamnl"), *words, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert all(d["condition"] == "service_healthy" for d in seed["depends_on"].values())
    assert set(seed["depends_on"]) == {"nlib", "tinl", "werkplaats", "dashboard"}


def test_prometheus_sends_the_metrics_token_every_service_is_given() -> None:
    """/metrics answers only TEAMNL_METRICS_TOKEN: compose gives Prometheus the services'
    token (written to the file its scrape config reads), and every Deployment reads it from
    a Secret, not from the ConfigMap or a literal."""
    jobs = {
        job["job_name"]: job for job in load_yaml(REPO / "deploy/prometheus.yml")["scrape_configs"]
    }
    authorization = jobs["teamnl-services"]["authorization"]
    assert authorization["type"] == "Bearer"
    services = load_yaml(REPO / "docker-compose.yml")["services"]
    prometheus = services["prometheus"]
    entrypoint = " ".join(prometheus["entrypoint"])
    assert f"> {authorization['credentials_file']}" in entrypoint
    assert prometheus["tmpfs"] == [str(Path(authorization["credentials_file"]).parent)]
    token = prometheus["environment"]["TEAMNL_METRICS_TOKEN"]
    for name in ("nlib", "tinl", "werkplaats", "dashboard"):
        assert services[name]["environment"]["TEAMNL_METRICS_TOKEN"] == token, name
    for name in ("nlib", "tinl", "werkplaats", "dashboard"):
        [deployment] = [
            doc
            for doc in yaml.safe_load_all(
                (REPO / f"deploy/k8s/base/services/{name}.yaml").read_text()
            )
            if doc and doc["kind"] == "Deployment"
        ]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        secret = env["TEAMNL_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": "teamnl-metrics", "key": "token"}, name
    assert "TEAMNL_METRICS_TOKEN" not in load_yaml(REPO / "deploy/k8s/base/configmap.yaml")["data"]
