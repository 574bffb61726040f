"""``teamnl``: run the whole suite locally, seed it, and operate it.

``teamnl run`` starts Kafka and PostgreSQL, the four services (supervised, their log lines
prefixed and coloured), creates the demo member and demo partner keys, seeds the letter's
facts through the services' public HTTP APIs and prints the URLs and credentials; Ctrl-C
stops the services (Kafka and PostgreSQL keep running: ``make down`` stops them).
``teamnl up`` / ``teamnl down`` do the same detached, with pid files and logs in the state
folder (``TEAMNL_SUITE_STATE_DIR``, default ``<infra state>/suite``). The crash policy is in
:mod:`teamnl_suite.supervisor`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from teamnl_shared.contract.topics import INGESTION_SERVICES, IngestionService
from teamnl_shared.telemetry.scrape import TOKEN_VARIABLE
from teamnl_suite.infra import Infrastructure
from teamnl_suite.infra.process import exclusive_lock

from . import demo, pidfile
from .client import IngestionClient, SendReport
from .config import BY_NAME, SERVICES, SuiteConfig
from .output import ConsoleSink, FileSink
from .supervisor import Supervisor, install_signal_handlers

app = typer.Typer(
    help="Run, seed and operate the teamnl suite.", no_args_is_help=True, add_completion=False
)
keys_app = typer.Typer(help="Partner API keys of the initiative services.", no_args_is_help=True)
members_app = typer.Typer(help="ISO NL dashboard members.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(members_app, name="members")

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

ReadyTimeout = Annotated[float, typer.Option(help="seconds to wait for the services")]
NoSeed = Annotated[bool, typer.Option("--no-seed", help="no demo credentials, no seed")]
ServiceOption = Annotated[IngestionService, typer.Option("--service", help="the service")]


def _supervisor_pid_file(config: SuiteConfig) -> Path:
    return config.state_dir / "supervisor.pid"


def _start_infra() -> None:
    with err.status("starting PostgreSQL and Apache Kafka"):
        Infrastructure.from_env().up()


def _check_service(service: str) -> str:
    """A service named in a value (``--key SERVICE=KEY``); typer checks ``--service``."""
    if service not in INGESTION_SERVICES:
        raise typer.BadParameter(f"{service!r}: one of {', '.join(INGESTION_SERVICES)}")
    return service


# -- run / up / down / status ------------------------------------------------------------------


@app.command()
def run(ready_timeout: ReadyTimeout = 180.0, no_seed: NoSeed = False) -> None:
    """Start the whole suite in the foreground; Ctrl-C stops it."""
    config = SuiteConfig.from_env()
    if pidfile.read(_supervisor_pid_file(config)) is not None:
        err.print("[red]the suite is running already[/] (teamnl status; teamnl down)")
        raise typer.Exit(1)
    _start_infra()
    asyncio.run(demo.ensure_databases(config))
    raise typer.Exit(asyncio.run(_run_foreground(config, ready_timeout, not no_seed)))


async def _run_foreground(config: SuiteConfig, ready_timeout: float, with_demo: bool) -> int:
    supervisor = Supervisor(config, ConsoleSink(console))
    pid_path = _supervisor_pid_file(config)
    pidfile.write(pid_path, os.getpid())
    install_signal_handlers(supervisor, lambda _: err.print("[bold]stopping the services…[/]"))
    task = asyncio.create_task(supervisor.run())
    try:
        await _set_up(
            config, ready_timeout, with_demo, lambda: not (supervisor.stopping or task.done())
        )
        console.print("[bold green]running[/] - Ctrl-C stops the services")
    except SET_UP_ERRORS as error:
        err.print(f"[bold red]set-up failed:[/] {error}")
        if not isinstance(error, SeedFailed):  # a refused seed event leaves a working suite
            supervisor.stop()
    code = await task
    pidfile.remove(pid_path, os.getpid())
    if supervisor.gave_up:
        err.print(f"[bold red]failed:[/] gave up on {', '.join(supervisor.gave_up)}")
    err.print("services stopped; Kafka and PostgreSQL keep running (make down stops them)")
    return code


@app.command()
def up(ready_timeout: ReadyTimeout = 180.0, no_seed: NoSeed = False) -> None:
    """Start the suite detached (idempotent); wait until ready, set up the demo."""
    config = SuiteConfig.from_env()
    _start_infra()
    asyncio.run(demo.ensure_databases(config))
    with exclusive_lock(config.state_dir / ".suite.lock"):
        pid = pidfile.read(_supervisor_pid_file(config))
        if pid is not None:
            err.print(
                f"already running (supervisor pid {pid}); credentials were printed "
                "when it started (teamnl down && teamnl up prints new ones)"
            )
            _print_urls(config)
            return
        pid = _spawn_supervisor(config)
    try:
        asyncio.run(_set_up(config, ready_timeout, not no_seed, lambda: pidfile.alive(pid)))
    except SET_UP_ERRORS as error:
        err.print(f"[bold red]set-up failed:[/] {error}")
        err.print(_log_tail(config))
        if not isinstance(error, SeedFailed):  # a refused seed event leaves a working suite
            pidfile.stop(_supervisor_pid_file(config), timeout=60)
        raise typer.Exit(1) from None
    console.print(
        f"[bold green]running[/] (supervisor pid {pid}; logs in "
        f"{config.state_dir / 'logs'}) - teamnl down stops it"
    )


def _spawn_supervisor(config: SuiteConfig) -> int:
    log_dir = config.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "supervisor.out").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "teamnl_suite", "supervise"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ),
        )
    pidfile.write(_supervisor_pid_file(config), process.pid)
    return process.pid


def _log_tail(config: SuiteConfig, lines: int = 15) -> str:
    log_dir = config.state_dir / "logs"
    try:
        tail = (log_dir / "supervisor.log").read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        tail = []
    return "\n".join([*tail, f"each service's own log: {log_dir}/<service>.log"])


@app.command(hidden=True)
def supervise() -> None:
    """The detached supervisor that ``teamnl up`` starts (logs to files)."""
    config = SuiteConfig.from_env()
    sink = FileSink(config.state_dir / "logs")

    async def main() -> int:
        supervisor = Supervisor(config, sink)
        install_signal_handlers(supervisor)
        return await supervisor.run()

    try:
        code = asyncio.run(main())
    finally:
        sink.close()
        pidfile.remove(_supervisor_pid_file(config), os.getpid())
    raise typer.Exit(code)


@app.command()
def down(timeout: Annotated[float, typer.Option(help="seconds before SIGKILL")] = 60.0) -> None:
    """Stop the suite started by ``up`` or ``run`` (idempotent; stale pid files are ignored)."""
    config = SuiteConfig.from_env()
    stopped = pidfile.stop(_supervisor_pid_file(config), timeout)
    leftovers = [
        name
        for name in BY_NAME
        if pidfile.stop(config.state_dir / "pids" / f"{name}.pid", timeout) is not None
    ]
    if stopped is None and not leftovers:
        err.print("not running")
        return
    if leftovers:
        err.print(f"[yellow]stopped services left without a supervisor: {', '.join(leftovers)}")
    err.print("[green]stopped[/]")


@app.command()
def status() -> None:
    """Show the supervisor, each service (pid, URL, ready) and the infrastructure."""
    config = SuiteConfig.from_env()
    table = Table("process", "pid", "url", "state")
    supervisor_pid = pidfile.read(_supervisor_pid_file(config))
    table.add_row(
        "supervisor",
        str(supervisor_pid or "-"),
        "",
        _state(supervisor_pid is not None, "running", "stopped"),
    )
    all_ready = supervisor_pid is not None
    for spec in SERVICES:
        endpoint = config.endpoint(spec.name)
        pid = pidfile.read(config.state_dir / "pids" / f"{spec.name}.pid")
        ready = _is_ready(endpoint.ready_url)
        all_ready &= ready
        table.add_row(spec.name, str(pid or "-"), endpoint.url, _state(ready, "ready", "not ready"))
    infra = Infrastructure.from_env()
    kafka_ok = asyncio.run(infra.kafka_ready())
    postgres_ok = infra.config.external_database_url is not None or infra.postgres.running()
    table.add_row("kafka", "", infra.kafka_bootstrap, _state(kafka_ok, "up", "down"))
    table.add_row(
        "postgres", "", f"127.0.0.1:{infra.config.postgres_port}", _state(postgres_ok, "up", "down")
    )
    console.print(table)
    raise typer.Exit(0 if all_ready else 1)


def _state(ok: bool, good: str, bad: str) -> str:
    return f"[green]{good}" if ok else f"[red]{bad}"


def _is_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


# -- demo set-up ---------------------------------------------------------------------------------


class SeedFailed(RuntimeError):
    pass


# What can go wrong while setting up a started suite (the suite is stopped, except after
# SeedFailed); anything else is a bug and shows its traceback.
SET_UP_ERRORS = (
    demo.NotReady,
    SeedFailed,
    httpx.HTTPError,
    OSError,
    asyncpg.PostgresError,
    ValueError,
)


async def _set_up(
    config: SuiteConfig, ready_timeout: float, with_demo: bool, still_running: Callable[[], bool]
) -> None:
    with err.status("waiting for the services") as status:
        ready: list[str] = []

        def on_ready(name: str) -> None:
            ready.append(name)
            status.update(f"waiting for the services (ready: {', '.join(ready)})")

        await demo.wait_until_ready(
            config, timeout=ready_timeout, still_running=still_running, on_ready=on_ready
        )
    if not with_demo:
        _print_urls(config)
        return
    with err.status("creating the demo member and demo partner keys"):
        password = demo.demo_password()
        await demo.create_demo_member(config, password)
        keys = await demo.issue_demo_keys(config)
    reports = await _seed_with_progress(config)
    _print_urls(config)
    _print_credentials(demo.DemoCredentials(demo.DEMO_EMAIL, password, keys))
    _raise_on_failures(reports)


async def _seed_with_progress(
    config: SuiteConfig, keys: dict[str, str] | None = None
) -> dict[str, SendReport]:
    with _progress() as progress:
        task = progress.add_task("seeding the letter's facts", total=demo.seed_size())
        reports = await demo.run_seed(config, keys, on_batch=lambda n: progress.advance(task, n))
    for service, report in reports.items():
        err.print(
            f"seed {service:<10} {report.accepted} accepted, {report.replayed} replayed, "
            f"{len(report.failures)} failed"
        )
    return reports


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=False,
    )


def _raise_on_failures(reports: dict[str, SendReport]) -> None:
    failures = [(service, f) for service, r in reports.items() for f in r.failures]
    for service, failure in failures[:20]:
        err.print(f"[red]seed {service} #{failure.index}: {failure.status} {failure.reason()}")
    if failures:
        raise SeedFailed(f"{len(failures)} seed events were refused")


def _print_urls(config: SuiteConfig) -> None:
    console.print("\n[bold]teamnl is up[/]")
    for spec in SERVICES:
        endpoint = config.endpoint(spec.name)
        docs = "" if spec.name == "dashboard" else f"  (API docs {endpoint.url}/docs)"
        console.print(f"  {spec.name:<11} {endpoint.url}{docs}", soft_wrap=True, highlight=False)
    token = (
        f"${TOKEN_VARIABLE}"
        if config.base_env.get(TOKEN_VARIABLE)
        else f"the token in {config.metrics_token_file()}"
    )
    console.print(
        f"  each one's /metrics answers a scraper sending 'Authorization: Bearer <token>', {token}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


def _print_credentials(credentials: demo.DemoCredentials) -> None:
    """Printed once, on the terminal only (never to a log)."""
    console.print("\n[bold]demo credentials[/] (shown once; each start issues new ones)")
    console.print(
        f"  dashboard login  {credentials.email}  password: {credentials.password}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    for key in credentials.keys:
        console.print(
            f"  {key.service} key ({key.partner})  {key.key}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    console.print()


# -- seed / replay -------------------------------------------------------------------------------


@app.command("seed")
def seed_command(
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", help="SERVICE=KEY of a seed partner; default: a temporary key per service"
        ),
    ] = None,
) -> None:
    """Send the letter's facts to the running services (idempotent: replays answer 200)."""
    config = SuiteConfig.from_env()
    keys = dict(item.split("=", 1) for item in key or [])
    for service in keys:
        _check_service(service)
    not_ready = [n for n in INGESTION_SERVICES if not _is_ready(config.endpoint(n).ready_url)]
    if not_ready:
        err.print(f"[red]not ready: {', '.join(not_ready)}[/] (teamnl up first)")
        raise typer.Exit(1)
    reports = asyncio.run(_seed_with_progress(config, keys or None))
    try:
        _raise_on_failures(reports)
    except SeedFailed as error:
        err.print(f"[bold red]{error}")
        raise typer.Exit(1) from None


@app.command()
def replay(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="structured CloudEvents, one JSON per line"
        ),
    ],
    service: ServiceOption,
    key: Annotated[str, typer.Option(envvar="TEAMNL_API_KEY", help="the partner's API key")],
    url: Annotated[str | None, typer.Option(help="the service's base URL")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 500,
) -> None:
    """Post a file of CloudEvents in batches; shows progress and each refused event."""
    base_url = url or SuiteConfig.from_env().endpoint(service).url
    lines, documents, unreadable = _read_jsonl(file)
    with _progress() as progress:
        task = progress.add_task(f"replaying {file.name}", total=len(documents))
        report = asyncio.run(
            _send(base_url, key, documents, batch_size, lambda n: progress.advance(task, n))
        )
    _print_replay(report, lines, documents, unreadable)
    if report.failures or unreadable:
        raise typer.Exit(1)


def _read_jsonl(file: Path) -> tuple[list[int], list[Any], list[tuple[int, str]]]:
    """(line number of each document, the documents, (line, reason) of unreadable lines)."""
    lines: list[int] = []
    documents: list[Any] = []
    unreadable: list[tuple[int, str]] = []
    with file.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                documents.append(json.loads(text))
                lines.append(number)
            except ValueError as error:
                unreadable.append((number, f"not JSON: {error}"))
    return lines, documents, unreadable


async def _send(
    base_url: str, key: str, documents: list[Any], batch_size: int, on_batch: Callable[[int], None]
) -> SendReport:
    async with IngestionClient(base_url, key) as client:
        return await client.send(documents, batch_size=batch_size, on_batch=on_batch)


def _print_replay(
    report: SendReport, lines: list[int], documents: list[Any], unreadable: list[tuple[int, str]]
) -> None:
    rows = [(number, "", "-", reason) for number, reason in unreadable]
    for failure in report.failures:
        document = documents[failure.index]
        event_id = document.get("id", "") if isinstance(document, dict) else ""
        rows.append((lines[failure.index], str(event_id), str(failure.status), failure.reason()))
    if rows:
        table = Table("line", "id", "status", "why")
        for number, event_id, status_code, reason in sorted(rows):
            table.add_row(str(number), event_id, status_code, reason)
        console.print(table)
    console.print(
        f"{report.accepted} accepted, {report.replayed} replayed (already accepted), "
        f"{len(report.failures) + len(unreadable)} failed"
    )


# -- keys / members / rebuild (delegated to the kit and the dashboard) ---------------------------


def _with_pool(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    from teamnl_shared.ingestion.cli import with_pool

    return with_pool(url, action)


@keys_app.command("create")
def keys_create(
    service: ServiceOption,
    partner: Annotated[str, typer.Option(help="partner slug; events use /partners/<slug>")],
    types: Annotated[
        str | None, typer.Option(help="comma-separated event types; default: all")
    ] = None,
) -> None:
    """Issue a key (the ingestion kit's create_key); printed once, on stdout."""
    from teamnl_shared.ingestion import create_key, ensure_key_store
    from teamnl_shared.ingestion.cli import event_types_option
    from teamnl_shared.ingestion.keys import InvalidKeyRequest

    url = SuiteConfig.from_env().keys_database_url(service)
    event_types = event_types_option(types)

    async def issue(pool: Any) -> Any:
        await ensure_key_store(pool)
        return await create_key(pool, service=service, partner=partner, event_types=event_types)

    try:
        issued = _with_pool(url, issue)
    except InvalidKeyRequest as error:
        raise typer.BadParameter(str(error)) from None
    err.print(
        f"key {issued.key_id} for /partners/{issued.partner} on {issued.service} "
        f"({len(issued.event_types)} event types); shown only once:"
    )
    print(issued.key)


@keys_app.command("list")
def keys_list(
    service: Annotated[
        IngestionService | None, typer.Option("--service", help="one service; default all three")
    ] = None,
) -> None:
    """List keys (ids, partners, scopes; never secrets)."""
    from teamnl_shared.ingestion import ensure_key_store, list_keys

    config = SuiteConfig.from_env()
    table = Table("service", "key id", "partner", "types", "created", "revoked")
    for name in [service] if service else INGESTION_SERVICES:

        async def stored(pool: Any, name: str = name) -> Any:
            await ensure_key_store(pool)
            return await list_keys(pool, service=name)

        for key in _with_pool(config.keys_database_url(name), stored):
            table.add_row(
                key.service,
                key.key_id,
                key.partner,
                str(len(key.event_types)),
                key.created_at.isoformat(timespec="seconds"),
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the 8 characters after tnl_")],
    service: ServiceOption,
) -> None:
    """Revoke a key at once."""
    from teamnl_shared.ingestion import revoke_key

    url = SuiteConfig.from_env().keys_database_url(service)
    if not _with_pool(url, lambda pool: revoke_key(pool, key_id, service)):
        err.print(f"[red]no active key {key_id} on {service}")
        raise typer.Exit(1)
    err.print(f"[green]revoked[/] {key_id}")


@members_app.command("create")
def members_create(
    email: Annotated[str, typer.Option(help="the member's e-mail address")],
    role: Annotated[str, typer.Option(help="member | secretariat | admin")] = "member",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a dashboard member (the dashboard's create_member)."""
    from teamnl_dashboard.auth import MemberError, accounts
    from teamnl_dashboard.auth.passwords import WeakPassword
    from teamnl_shared.ingestion.cli import database_reachable

    password = (
        sys.stdin.readline().rstrip("\r\n")
        if password_stdin
        else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    url = SuiteConfig.from_env().endpoint("dashboard").database_url
    try:
        with database_reachable(url):
            member = asyncio.run(accounts.create_member(url, email, password, role))
    except (MemberError, WeakPassword, ValueError) as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    err.print(f"[green]created[/] {member.email} ({member.role})")


@app.command()
def rebuild() -> None:
    """Rebuild the dashboard's projections from the topics (the dashboard's rebuild).

    The dashboard keeps serving meanwhile and switches over atomically at the end.
    """
    from aiokafka.errors import KafkaConnectionError

    from teamnl_dashboard.rebuild import RebuildRunning
    from teamnl_dashboard.rebuild import rebuild as rebuild_projections
    from teamnl_dashboard.settings import DashboardSettings
    from teamnl_shared.ingestion.cli import database_reachable

    config = SuiteConfig.from_env()
    settings = DashboardSettings(
        database_url=config.endpoint("dashboard").database_url,
        kafka_bootstrap_servers=config.kafka_bootstrap,
    )
    try:
        with (
            database_reachable(settings.database_url),
            err.status("rebuilding the projections") as status,
        ):
            result = asyncio.run(rebuild_projections(settings, progress=status.update))
    except RebuildRunning as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from None
    except KafkaConnectionError as error:  # nothing was switched: the projections stand
        bootstrap = settings.kafka_bootstrap_servers
        err.print(f"[red]cannot reach Kafka at {escape(bootstrap)}: {escape(str(error))}[/]")
        raise typer.Exit(1) from None
    err.print(
        f"[green]rebuilt[/]: {result.records} records, {result.applied} applied, "
        f"{result.dead_letters} dead letters, {result.seconds:.1f} s"
    )
