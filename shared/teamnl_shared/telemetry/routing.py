"""A tracer provider for process-wide instrumentation that serves several apps.

Some instrumentations (asyncpg's) patch a library once per process and take one tracer
provider. When several apps share a process (the tests run an initiative service and the
dashboard side by side), each query span must still go to the app it belongs to: the
provider of its parent span. With one app per process, as in production, this is simply
that app's provider.

A span with no parent is not made: a query outside any trace comes from a loop of the
service's own (the outbox relay's read and mark, a poll), and would be a trace of one span
each time it runs, many per event at low rates, that tells an operator nothing. Queries
inside a request, a consume or a publish span are traced as before.

Nor is a span made for transaction control (``BEGIN``, ``COMMIT``, ``SAVEPOINT``,
``RELEASE``): the span of the work that owns the transaction (a request, a group commit)
already times it, and a statement's span costs more CPU than its round trip. A group
commit of one event whose handler is not a set handler runs four statements, two of them
``BEGIN`` and ``COMMIT`` (one of a set handler's type runs one statement and no
transaction). A ``ROLLBACK`` is still traced: it tells that something was
refused or failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider


class ParentRoutedTracerProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self._providers: list[SdkTracerProvider] = []

    def register(self, provider: SdkTracerProvider) -> None:
        if provider not in self._providers:
            self._providers.append(provider)

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _ParentRoutedTracer(self._providers, instrumenting_module_name, args, kwargs)


_UNTRACED = trace.NoOpTracer()
TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"})
"""Span names (a statement's first word, as the asyncpg instrumentation names its spans)
that get no span."""


def _is_transaction_control(name: str) -> bool:
    return name.rstrip(";").upper() in TRANSACTION_CONTROL


class _ParentRoutedTracer(trace.Tracer):
    def __init__(
        self,
        providers: Sequence[SdkTracerProvider],
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._providers = providers
        self._name, self._args, self._kwargs = name, args, kwargs
        self._tracers: dict[int, trace.Tracer] = {}
        """Each provider's tracer, made once: the SDK's get_tracer costs more than the span."""

    def _target(self, name: str) -> trace.Tracer:
        if _is_transaction_control(name):
            return _UNTRACED
        parent = trace.get_current_span()
        if not parent.get_span_context().is_valid or not self._providers:
            return _UNTRACED
        resource = getattr(parent, "resource", None)
        chosen = next((p for p in self._providers if p.resource is resource), self._providers[0])
        tracer = self._tracers.get(id(chosen))
        if tracer is None:
            tracer = chosen.get_tracer(self._name, *self._args, **self._kwargs)
            self._tracers[id(chosen)] = tracer
        return tracer

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        return self._target(name).start_span(name, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # same call, looser signature
        self, name: str, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        with self._target(name).start_as_current_span(name, *args, **kwargs) as span:
            yield span
