"""The worker side only: the worker pool, one worker process, its middleware and the actor."""
