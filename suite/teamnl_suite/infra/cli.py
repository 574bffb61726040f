"""``teamnl-infra``: start, stop and inspect the local Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import shlex

import typer
from rich.console import Console

from . import Infrastructure
from .config import SERVICE_DATABASES

app = typer.Typer(help="Local Apache Kafka and PostgreSQL for teamnl.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def up() -> None:
    """Start Kafka and PostgreSQL (idempotent) and wait until both answer."""
    infra = Infrastructure.from_env()
    with console.status("starting PostgreSQL and Apache Kafka (first run resolves Kafka's jars)"):
        infra.up()
    console.print(
        f"[green]ready[/] kafka={infra.kafka_bootstrap} "
        f"postgres=127.0.0.1:{infra.config.postgres_port}"
    )


@app.command()
def down() -> None:
    """Stop what `up` started (idempotent)."""
    Infrastructure.from_env().down()
    console.print("[green]stopped[/]")


@app.command()
def status() -> None:
    """Show whether Kafka and PostgreSQL are running and answering."""
    infra = Infrastructure.from_env()
    kafka_ok = asyncio.run(infra.kafka_ready())
    pg_ok = infra.config.external_database_url is not None or infra.postgres.running()
    console.print(f"kafka    {infra.kafka_bootstrap:24} {'[green]up' if kafka_ok else '[red]down'}")
    console.print(
        f"postgres 127.0.0.1:{infra.config.postgres_port:<14} "
        f"{'[green]up' if pg_ok else '[red]down'}"
    )
    raise typer.Exit(0 if kafka_ok and pg_ok else 1)


@app.command()
def env() -> None:
    """Print the environment the services need, for `eval "$(teamnl-infra env)"`."""
    infra = Infrastructure.from_env()
    print(f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(infra.kafka_bootstrap)}")
    for database in SERVICE_DATABASES:
        prefix = database.removeprefix("teamnl_").upper()
        print(f"export {prefix}_DATABASE_URL={shlex.quote(infra.database_url(database))}")
