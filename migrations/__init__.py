"""Numbered SQL migrations and the runner that applies them."""
