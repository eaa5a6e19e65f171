"""What JCT tells the systems operators already watch: Prometheus metrics (``metrics``, shared
across processes through ``multiprocess``) and OpenTelemetry spans (``spans``, built by
``otel`` when an OTLP endpoint is configured). See docs/observability.md."""
