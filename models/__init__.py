"""The data layer: every SQL statement of JCT, the transaction boundaries, and the names of the
states. Above it, code speaks in domain terms (``claim_task``, ``finish_attempt``).

``db`` (the pooled handle) · ``states`` (statuses, events, the outcome table) · ``schema`` (the
tables as peewee models, checked against the migrations) · ``state_machine`` (the transitions)
· ``dispatch`` and ``leases`` (bookkeeping) · ``events`` · ``tasks`` · ``invocations`` ·
``artifacts`` · ``views`` (reads) · ``metrics``.
"""
