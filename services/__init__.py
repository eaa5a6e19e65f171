"""Service functions: the verbs of JCT (enqueue, run an attempt, dispatch, cancel, retry).
Both edges (HTTP and Dramatiq) call these; they speak to ``models``, ``storage`` and ``broker``."""
