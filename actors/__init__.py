"""The worker side only: middleware and actors. ``dramatiq actors.worker`` boots it."""
