"""The peers JCT is compared with, each on the run's shared PostgreSQL or RabbitMQ with a no-op
job: ``*_app`` modules are what the peer's worker processes import (the job reports its start
through ``bench.probe``), ``*_peer`` modules drive one peer for ``bench.peers.driver``."""
