"""What the suite runs and where: the four services, their ports, databases and state.

Every value comes from the environment the services read themselves, with the documented
defaults, so a test (or a second stack) isolates itself by setting the same variables:
``<PREFIX>_PORT``, ``<PREFIX>_DATABASE_URL``, ``TEAMNL_TOPIC_PREFIX``, and
``TEAMNL_SUITE_STATE_DIR`` for the pid files and logs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from teamnl_shared.telemetry.scrape import TOKEN_VARIABLE
from teamnl_suite.infra import Infrastructure


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # "nlib" | "tinl" | "werkplaats" | "dashboard"
    title: str
    env_prefix: str  # "NLIB_"
    script: str  # console script
    default_port: int
    database: str  # default database name
    colour: str  # Rich colour of its log prefix
    ready_path: str = "/readyz"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("nlib", "NLinBusiness", "NLIB_", "teamnl-nlib", 8101, "teamnl_nlib", "cyan"),
    ServiceSpec(
        "tinl",
        "Trade & Innovate NL + Global Stars",
        "TINL_",
        "teamnl-tinl",
        8102,
        "teamnl_tinl",
        "magenta",
    ),
    ServiceSpec(
        "werkplaats",
        "De Werkplaats",
        "WERKPLAATS_",
        "teamnl-werkplaats",
        8103,
        "teamnl_werkplaats",
        "green",
    ),
    ServiceSpec(
        "dashboard",
        "ISO NL dashboard",
        "DASHBOARD_",
        "teamnl-dashboard",
        8100,
        "teamnl_dashboard",
        "yellow",
    ),
)
BY_NAME: dict[str, ServiceSpec] = {spec.name: spec for spec in SERVICES}


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Pid files and logs of the suite; next to the infrastructure's state by default."""
    env = os.environ if env is None else env
    given = env.get("TEAMNL_SUITE_STATE_DIR")
    if given:
        return Path(given)
    return Infrastructure.from_env().config.state_dir / "suite"


def script_path(script: str) -> str:
    """The console script of this interpreter's environment (the venv), else from PATH."""
    beside = Path(sys.executable).parent / script
    if beside.exists():
        return str(beside)
    found = shutil.which(script)
    if found is None:
        raise FileNotFoundError(f"{script} is not installed (run scripts/bootstrap.sh)")
    return found


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@dataclass(frozen=True)
class Endpoint:
    spec: ServiceSpec
    host: str
    port: int
    database_url: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ready_url(self) -> str:
        return self.url + self.spec.ready_path


@dataclass(frozen=True)
class SuiteConfig:
    """Where each service listens and stores, and the environment it is started with."""

    state_dir: Path
    kafka_bootstrap: str
    endpoints: dict[str, Endpoint]
    base_env: dict[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SuiteConfig:
        env = dict(os.environ if env is None else env)
        infra = Infrastructure.from_env()
        endpoints = {
            spec.name: Endpoint(
                spec,
                host=env.get(f"{spec.env_prefix}HOST", "127.0.0.1"),
                port=int(env.get(f"{spec.env_prefix}PORT", spec.default_port)),
                database_url=env.get(f"{spec.env_prefix}DATABASE_URL")
                or infra.database_url(spec.database),
            )
            for spec in SERVICES
        }
        return cls(state_dir(env), infra.kafka_bootstrap, endpoints, env)

    def endpoint(self, name: str) -> Endpoint:
        return self.endpoints[name]

    def admin_database_url(self) -> str:
        return Infrastructure.from_env().admin_database_url()

    def keys_database_url(self, service: str) -> str:
        """Where ``service``'s partner keys live (the kit's ``keys_database_url`` rules)."""
        prefix = BY_NAME[service].env_prefix
        return (
            self.base_env.get("TEAMNL_KEYS_DATABASE_URL")
            or self.base_env.get(f"{prefix}KEYS_DATABASE_URL")
            or self.endpoint(service).database_url
        )

    def session_secret(self) -> str:
        """DASHBOARD_SESSION_SECRET, else one generated once and kept in the state dir (0600)."""
        return self._secret("DASHBOARD_SESSION_SECRET", self.state_dir / "dashboard-session-secret")

    def metrics_token(self) -> str:
        """TEAMNL_METRICS_TOKEN, else one generated once and kept in the state dir (0600):
        what a scrape of any service's ``/metrics`` sends (:meth:`metrics_token_file`)."""
        return self._secret(TOKEN_VARIABLE, self.metrics_token_file())

    def metrics_token_file(self) -> Path:
        return self.state_dir / "metrics-token"

    def _secret(self, variable: str, path: Path) -> str:
        given = self.base_env.get(variable)
        if given:
            return given
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def service_env(self, name: str) -> dict[str, str]:
        """The environment one service is started with."""
        endpoint = self.endpoint(name)
        prefix = endpoint.spec.env_prefix
        env = {
            **self.base_env,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            f"{prefix}HOST": endpoint.host,
            f"{prefix}PORT": str(endpoint.port),
            f"{prefix}DATABASE_URL": endpoint.database_url,
            "PYTHONUNBUFFERED": "1",
            TOKEN_VARIABLE: self.metrics_token(),
        }
        if name == "dashboard":
            env["DASHBOARD_SESSION_SECRET"] = self.session_secret()
        return env
