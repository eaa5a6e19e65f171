"""Running JCT and its helpers as real processes: ``jct up`` in its own home (``stack``), a
recording downstream HTTP server (``downstream``), slow clients (``drippers``), waiting on a
condition (``wait``).

Tests, drills and benchmarks all import this package; it imports none of them."""
