"""The multi-host drill (``python -m drills.hosts``, ``make drill-hosts``): JCT on six "hosts"
made of Linux network namespaces on one bridge (``drills.netns``) — PostgreSQL on one, RabbitMQ
and S3 on another, the API on a third, three worker hosts with two dramatiq processes each —
and real network faults between them: a worker host partitioned, the database cut off from the
workers, RabbitMQ restarted, the API cut off from the database. Each scenario ends by checking
in SQL that every task was done exactly once; the drill prints one table.

JCT is driven only through its processes, its HTTP API and SQL on its database.
"""
