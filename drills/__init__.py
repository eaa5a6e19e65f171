"""Fault drills: break a running JCT on purpose (kill, pause or signal a worker, stop its broker,
database or object store) and check that no accepted task is lost or completed twice.

The tests in ``tests/faults/`` use these pieces; ``python -m drills.soak`` (``make drill``) runs
the long soak from the command line.
"""
