"""OpenTelemetry, when it is wanted and installed: ``build_spans`` gives the runtime its
``Spans``, exporting over OTLP to the standard ``OTEL_EXPORTER_OTLP_*`` endpoint.

Optional on purpose: the packages are in ``requirements-otel.txt``, not in the base install.
With ``OTEL_EXPORTER_OTLP_ENDPOINT`` unset there are no spans; set but the packages missing,
one log line says so and there are none either.
"""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

import tracing
from logging_setup import log_event
from observability.spans import Spans

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install -r requirements-otel.txt"


def build_spans(component: str, *, enabled: bool) -> Spans:
    """The process's spans: exported over OTLP (HTTP/protobuf) when ``enabled``, else off."""
    if not enabled:
        return Spans()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log_event(logger, "otel_unavailable", f"OTEL_EXPORTER_OTLP_ENDPOINT is set but "
                  f"OpenTelemetry is not installed ({exc.name}); no spans ({INSTALL_HINT})",
                  level=logging.WARNING)
        return Spans()
    provider = tracer_provider(component)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log_event(logger, "otel_enabled", f"spans exported over OTLP as service jct-{component}")
    return spans_from(provider)


def tracer_provider(component: str) -> Any:
    """An SDK tracer provider for ``jct-<component>`` whose root spans take the JCT trace id.
    Kept by the runtime, not installed as OpenTelemetry's global provider: JCT's spans do not
    depend on what else in the process uses OpenTelemetry."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(resource=Resource.create({"service.name": f"jct-{component}"}),
                          id_generator=jct_id_generator())


def spans_from(provider: Any) -> Spans:
    return Spans(provider.get_tracer("jct"), provider)


def jct_id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class JctIdGenerator(RandomIdGenerator):
        """A root span's trace id is the bound JCT trace id (a UUID is 128 bits, as an OTel
        trace id is); random only where no trace is bound."""

        def generate_trace_id(self) -> int:
            bound = tracing.trace_id_var.get()
            return uuid.UUID(bound).int if bound else random.getrandbits(128)

    return JctIdGenerator()
