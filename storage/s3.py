"""The artifact store over S3 (boto3, and a lean signed PUT for the hot path). Keys are
``<trace_id>/<task_id>/<job_id>/<name>`` and every object carries ``trace-id``/``task-id``
metadata, so a bucket browses by trace id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config import Settings
from errors import StorageError
from storage.sigv4_put import SigV4Put


@dataclass(frozen=True)
class PutResult:
    uri: str
    size: int
    sha256: str


def object_key(trace_id: str, task_id: str, job_id: str, name: str) -> str:
    return f"{trace_id}/{task_id}/{job_id}/{name}"


def key_from_uri(uri: str, bucket: str) -> str:
    prefix = f"s3://{bucket}/"
    if not uri.startswith(prefix):
        raise StorageError(f"artifact uri {uri!r} is not in bucket {bucket!r}")
    return uri[len(prefix):]


def metadata_value(metadata: dict[str, str], name: str) -> str | None:
    """Read user metadata case-insensitively (rclone answers ``Trace-Id``, MinIO ``trace-id``)."""
    wanted = name.lower()
    return next((v for k, v in metadata.items() if k.lower() == wanted), None)


class ArtifactStore:
    """Puts and gets blobs in one bucket."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        # The PUT on every attempt's path is signed and sent without boto3 (storage.sigv4_put)
        # wherever an endpoint and keys are configured, as JCT always configures them.
        self._lean = (SigV4Put(settings.s3_endpoint, settings.s3_bucket, settings.s3_region,
                               settings.s3_access_key, settings.s3_secret_key)
                      if settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key
                      else None)
        self._client: BaseClient = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            region_name=settings.s3_region,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30,
                          retries={"max_attempts": 5, "mode": "standard"}),
        )

    def ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in (
                        "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"cannot create bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"object store unreachable: {exc}") from exc

    def put(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, str]) -> PutResult:
        sha256 = hashlib.sha256(data).hexdigest()
        if self._lean is not None:
            self._lean.put(key, data, sha256, content_type=content_type, metadata=metadata)
        else:
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                        ContentType=content_type, Metadata=metadata)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"upload of {key} failed: {exc}") from exc
        return PutResult(uri=f"s3://{self.bucket}/{key}", size=len(data), sha256=sha256)

    def head(self, key: str) -> dict[str, object]:
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=key))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"head of {key} failed: {exc}") from exc

    def stream(self, key: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"download of {key} failed: {exc}") from exc
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()

    def ping(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"bucket {self.bucket} unreachable: {exc}") from exc
