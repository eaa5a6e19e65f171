"""Artifact storage: blobs in S3 (MinIO, or the embedded rclone server), rows in ``artifacts``."""
