"""A tracer provider for process-wide instrumentation that serves several apps.

Some instrumentations (asyncpg's) patch a library once per process and take one tracer
provider. When several apps share a process (the tests run an initiative service and the
dashboard side by side), each query span must still go to the app it belongs to: the
provider of its parent span. With one app per process, as in production, this is simply
that app's provider.
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

    def _target(self) -> trace.Tracer:
        resource = getattr(trace.get_current_span(), "resource", None)
        chosen = next((p for p in self._providers if p.resource is resource), None)
        if chosen is None and self._providers:
            chosen = self._providers[0]
        if chosen is None:
            return trace.NoOpTracer()
        return chosen.get_tracer(self._name, *self._args, **self._kwargs)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._target().start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # same call, looser signature
        self, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        with self._target().start_as_current_span(*args, **kwargs) as span:
            yield span
