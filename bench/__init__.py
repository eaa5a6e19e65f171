"""``make bench``: JCT measured as a black box next to its peers, in one run, on one shared
PostgreSQL and RabbitMQ. ``runner`` runs each system in turn (``jct``, ``peers/``,
``ceilings/``) and ``report`` writes the table, the ratios and ``results/latest.json``."""
