"""The only module that speaks to S3.

Every other module passes `s3://bucket/key` URIs. The client follows the standard AWS settings
(credential chain, AWS_ENDPOINT_URL, AWS_REGION), so the same code talks to moto's server, MinIO
or AWS. Three habits make the pipeline's outputs trustworthy:

- retries and timeouts on every call (botocore's adaptive mode), multipart for large uploads;
- multi-object outputs are committed by a MANIFEST.json written last: a prefix without one does
  not exist for any reader, and readers verify each object's sha256 against it;
- single-object updates that can race (registry aliases, versions) are conditional writes, and each
  carries a write token in its metadata: when botocore retries a PUT whose answer was lost after the
  server applied it, the retry's 412 is recognised as this writer's own success, not a lost race.

It is longer than most modules on purpose: the rule that nothing else speaks to S3 puts every kind
of call here (reads, streamed downloads, conditional writes, listings, manifests, presigned URLs).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gauntlet.errors import (
    BadInput,
    IntegrityError,
    NotCommitted,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from gauntlet.hashing import canonical_json, sha256_bytes, sha256_file

MANIFEST_NAME = "MANIFEST.json"
_MULTIPART_THRESHOLD = 64 * 1024 * 1024
_BODY_READ_ATTEMPTS = 3
# User metadata (x-amz-meta-*) of every conditional write: a fresh token per put_bytes call.
WRITE_TOKEN_KEY = "gauntlet-write-token"
_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412"}


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise BadInput(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise BadInput(f"S3 URI has no bucket: {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def join(base: str, *parts: str) -> str:
    """Join URI parts with single slashes."""
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


@functools.lru_cache(maxsize=1)
def client() -> Any:
    """One boto3 S3 client per process, configured from the standard AWS settings."""
    # 5xx, throttling and dropped connections are retried with backoff; adaptive mode also slows
    # the client down while the server throttles. 10 attempts outlast any plausible burst of faults.
    retries: Any = {
        "mode": os.environ.get("GAUNTLET_S3_RETRY_MODE", "adaptive"),
        "max_attempts": int(os.environ.get("GAUNTLET_S3_MAX_ATTEMPTS", "10")),
    }
    config = Config(
        retries=retries,
        connect_timeout=float(os.environ.get("GAUNTLET_S3_CONNECT_TIMEOUT", "5")),
        read_timeout=float(os.environ.get("GAUNTLET_S3_READ_TIMEOUT", "60")),
        # Checksums on every request only when the server supports them; moto and MinIO may not.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", config=config)


def _encryption_args() -> dict[str, str]:
    """Server-side encryption is a setting: GAUNTLET_S3_SSE=AES256 or aws:kms (+ key id)."""
    sse = os.environ.get("GAUNTLET_S3_SSE", "")
    if not sse:
        return {}
    args = {"ServerSideEncryption": sse}
    if sse == "aws:kms" and os.environ.get("GAUNTLET_S3_KMS_KEY_ID"):
        args["SSEKMSKeyId"] = os.environ["GAUNTLET_S3_KMS_KEY_ID"]
    return args


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def ensure_bucket(bucket: str) -> None:
    try:
        client().head_bucket(Bucket=bucket)
    except ClientError:
        client().create_bucket(Bucket=bucket)


def put_bytes(
    uri: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
    if_none_match: bool = False,
    if_match: str | None = None,
) -> str:
    """Write one object and return its ETag.

    if_none_match: create only if absent; if_match: replace only if the ETag is unchanged.
    Either raises PreconditionFailed when the condition does not hold. A conditional write tags the
    object with a token of its own, so a 412 answering botocore's retry of a PUT the server had
    already applied (its first answer was lost) is taken for the success it is.
    """
    loc = S3Uri.parse(uri)
    token = uuid.uuid4().hex if (if_none_match or if_match is not None) else None
    args: dict[str, Any] = {
        "Bucket": loc.bucket,
        "Key": loc.key,
        "Body": data,
        "ContentType": content_type,
        **_encryption_args(),
    }
    if token is not None:
        args["Metadata"] = {WRITE_TOKEN_KEY: token}
    if if_none_match:
        args["IfNoneMatch"] = "*"
    if if_match is not None:
        args["IfMatch"] = if_match
    try:
        response = client().put_object(**args)
    except ClientError as error:
        if _error_code(error) in _PRECONDITION_CODES:
            own_etag = _etag_if_written_by(loc, token)
            if own_etag is not None:
                return own_etag
            raise PreconditionFailed(f"conditional write to {uri} lost a race") from error
        raise StorageError(f"cannot write {uri}: {error}") from error
    except BotoCoreError as error:  # connection failures that outlasted botocore's retries
        raise StorageError(f"cannot write {uri}: {error}") from error
    return str(response["ETag"])


def _etag_if_written_by(loc: S3Uri, token: str | None) -> str | None:
    """The object's ETag if its current bytes are the write that carried `token`, else None.

    Only the latest write is visible: if another writer replaced ours after it landed (it must have
    read ours and matched its ETag), ours counts as lost, which is what every caller can act on.
    """
    if token is None:
        return None
    try:
        head = client().head_object(Bucket=loc.bucket, Key=loc.key)
    except ClientError as error:
        if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise StorageError(f"cannot stat {loc} after a failed conditional write: {error}") from error
    except BotoCoreError as error:
        raise StorageError(f"cannot stat {loc} after a failed conditional write: {error}") from error
    if head.get("Metadata", {}).get(WRITE_TOKEN_KEY) != token:
        return None
    return str(head["ETag"])


def put_json(uri: str, obj: Any, **conditions: Any) -> str:
    body = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    return put_bytes(uri, body, content_type="application/json", **conditions)


def get_object(uri: str) -> tuple[bytes, str]:
    """Read one object; return (bytes, ETag)."""
    loc = S3Uri.parse(uri)
    for attempt in range(_BODY_READ_ATTEMPTS):
        try:
            response = client().get_object(Bucket=loc.bucket, Key=loc.key)
            return response["Body"].read(), str(response["ETag"])
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFound(f"no object at {uri}") from error
            raise StorageError(f"cannot read {uri}: {error}") from error
        except BotoCoreError as error:
            # botocore retries a request, not a body cut off half-way: read the object again.
            if attempt == _BODY_READ_ATTEMPTS - 1:
                raise StorageError(f"cannot read {uri}: {error}") from error
    raise AssertionError("unreachable")


def download_object(uri: str, path: str | Path) -> str:
    """Stream one object into a local file and return its ETag.

    Memory stays at one chunk however large the object: a step that streams a partition in
    batches would otherwise hold the whole object's bytes besides the batch.
    """
    loc = S3Uri.parse(uri)
    for attempt in range(_BODY_READ_ATTEMPTS):
        try:
            response = client().get_object(Bucket=loc.bucket, Key=loc.key)
            with open(path, "wb") as handle:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    handle.write(chunk)
            return str(response["ETag"])
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFound(f"no object at {uri}") from error
            raise StorageError(f"cannot read {uri}: {error}") from error
        except BotoCoreError as error:
            if attempt == _BODY_READ_ATTEMPTS - 1:
                raise StorageError(f"cannot read {uri}: {error}") from error
    raise AssertionError("unreachable")


def get_bytes(uri: str, expected_sha256: str | None = None) -> bytes:
    data, _ = get_object(uri)
    if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
        raise IntegrityError(f"{uri}: sha256 does not match the manifest or record")
    return data


def get_json(uri: str) -> Any:
    return json.loads(get_bytes(uri))


def get_json_with_etag(uri: str) -> tuple[Any, str]:
    data, etag = get_object(uri)
    return json.loads(data), etag


def exists(uri: str) -> bool:
    loc = S3Uri.parse(uri)
    try:
        client().head_object(Bucket=loc.bucket, Key=loc.key)
        return True
    except ClientError as error:
        if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise StorageError(f"cannot stat {uri}: {error}") from error
    except BotoCoreError as error:  # connection failures that outlasted botocore's retries
        raise StorageError(f"cannot stat {uri}: {error}") from error


def list_objects(prefix_uri: str) -> Iterator[dict[str, Any]]:
    """Yield {'uri', 'key', 'size', 'etag', 'last_modified'} for every object under a prefix, in key order."""
    loc = S3Uri.parse(prefix_uri)
    paginator = client().get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key):
            for item in page.get("Contents", []):
                yield {
                    "uri": f"s3://{loc.bucket}/{item['Key']}",
                    "key": item["Key"],
                    "size": int(item["Size"]),
                    "etag": str(item["ETag"]),
                    "last_modified": item["LastModified"].isoformat(),
                }
    except (ClientError, BotoCoreError) as error:
        raise StorageError(f"cannot list {prefix_uri}: {error}") from error


def delete_objects(uris: list[str]) -> None:
    """Delete objects (a missing one counts as deleted), in batches of S3's 1000 keys per request."""
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        loc = S3Uri.parse(uri)
        by_bucket.setdefault(loc.bucket, []).append(loc.key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                response = client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            except (ClientError, BotoCoreError) as error:
                raise StorageError(f"cannot delete {len(batch)} objects in s3://{bucket}: {error}") from error
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(f"cannot delete s3://{bucket}/{first.get('Key')}: {first.get('Message')}")


def list_multipart_uploads(prefix_uri: str) -> Iterator[dict[str, Any]]:
    """Yield {'uri', 'upload_id', 'initiated', 'size'} for every multipart upload begun under a prefix
    and neither completed nor aborted: its parts take space but no reader can see them."""
    loc = S3Uri.parse(prefix_uri)
    try:
        for page in client().get_paginator("list_multipart_uploads").paginate(Bucket=loc.bucket, Prefix=loc.key):
            for upload in page.get("Uploads", []):
                if not upload["Key"].startswith(loc.key):  # some servers ignore the prefix
                    continue
                parts = client().get_paginator("list_parts")
                size = sum(
                    int(part["Size"])
                    for parts_page in parts.paginate(Bucket=loc.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    for part in parts_page.get("Parts", [])
                )
                yield {
                    "uri": f"s3://{loc.bucket}/{upload['Key']}",
                    "upload_id": str(upload["UploadId"]),
                    "initiated": upload["Initiated"].isoformat(),
                    "size": size,
                }
    except (ClientError, BotoCoreError) as error:
        raise StorageError(f"cannot list the multipart uploads under {prefix_uri}: {error}") from error


def abort_multipart_upload(uri: str, upload_id: str) -> None:
    """Abort an incomplete multipart upload, freeing its parts; one already gone counts as aborted."""
    loc = S3Uri.parse(uri)
    try:
        client().abort_multipart_upload(Bucket=loc.bucket, Key=loc.key, UploadId=upload_id)
    except ClientError as error:
        if _error_code(error) != "NoSuchUpload":
            raise StorageError(f"cannot abort the multipart upload {upload_id} of {uri}: {error}") from error
    except BotoCoreError as error:
        raise StorageError(f"cannot abort the multipart upload {upload_id} of {uri}: {error}") from error


def upload_file(path: str | Path, uri: str, content_type: str = "application/octet-stream") -> None:
    """Upload a local file; large files go multipart and boto3 aborts the upload on failure."""
    loc = S3Uri.parse(uri)
    extra = {"ContentType": content_type, **_encryption_args()}
    transfer = TransferConfig(multipart_threshold=_MULTIPART_THRESHOLD)
    try:
        client().upload_file(str(path), loc.bucket, loc.key, ExtraArgs=extra, Config=transfer)
    except (ClientError, BotoCoreError, boto3.exceptions.S3UploadFailedError) as error:
        raise StorageError(f"cannot upload {path} to {uri}: {error}") from error


def download_file(uri: str, path: str | Path, expected_sha256: str | None = None) -> Path:
    loc = S3Uri.parse(uri)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        client().download_file(loc.bucket, loc.key, str(path))
    except ClientError as error:
        if _error_code(error) in {"404", "NoSuchKey"}:
            raise ObjectNotFound(f"no object at {uri}") from error
        raise StorageError(f"cannot download {uri}: {error}") from error
    except BotoCoreError as error:
        raise StorageError(f"cannot download {uri}: {error}") from error
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        path.unlink()
        raise IntegrityError(f"{uri}: sha256 does not match the manifest or record")
    return path


_BROWSER_TYPES = {
    ".html": "text/html",
    ".json": "application/json",
    ".png": "image/png",
    ".md": "text/plain",
    ".jsonl": "text/plain",
    ".csv": "text/plain",
}


def presigned_url(uri: str, expires_s: int = 3600) -> str:
    """A time-limited GET URL for one object that a browser can open without credentials.

    The response's Content-Type is set from the suffix, so an HTML report uploaded as a generic
    binary still renders instead of downloading.
    """
    loc = S3Uri.parse(uri)
    params: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
    kind = _BROWSER_TYPES.get(Path(loc.key).suffix.lower())
    if kind:
        params["ResponseContentType"] = kind
    try:
        return str(client().generate_presigned_url("get_object", Params=params, ExpiresIn=min(expires_s, 604800)))
    except ClientError as error:
        raise StorageError(f"cannot presign {uri}: {error}") from error


# --- committed multi-object outputs -------------------------------------------------------------


def commit_directory(
    local_dir: str | Path, prefix_uri: str, meta: dict[str, Any], referenced: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Upload every file under local_dir, then write MANIFEST.json last.

    The manifest lists each object's sha256 and size; until it exists the prefix is invisible to
    readers, so a crash half-way leaves nothing a later step could mistake for a finished output.
    `referenced`: files of the output that already lie elsewhere, immutable (rel -> sha256, size and
    their "uri"), listed as given: readers fetch them from there.
    """
    local_dir = Path(local_dir)
    if is_committed(prefix_uri):
        return read_manifest(prefix_uri)  # content-addressed: an earlier run already made this
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        if rel == MANIFEST_NAME:
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        if files[rel]["size"] >= _MULTIPART_THRESHOLD:
            upload_file(path, join(prefix_uri, rel))
            continue
        try:
            # Never overwrite: a concurrent commit of the same key may already have written this
            # file (and listed its sha256 in a manifest); keep its bytes and describe those.
            put_bytes(join(prefix_uri, rel), path.read_bytes(), if_none_match=True)
        except PreconditionFailed:
            existing = get_bytes(join(prefix_uri, rel))
            files[rel] = {"sha256": sha256_bytes(existing), "size": len(existing)}
    manifest = {**meta, "files": {**files, **(referenced or {})}}
    try:
        put_json(join(prefix_uri, MANIFEST_NAME), manifest, if_none_match=True)
    except PreconditionFailed:
        # Another run committed the same content-addressed output first: use theirs.
        return read_manifest(prefix_uri)
    return manifest


def read_manifest(prefix_uri: str) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = get_json(join(prefix_uri, MANIFEST_NAME))
    except FileNotFoundError as error:
        raise NotCommitted(f"{prefix_uri} has no {MANIFEST_NAME}: it was never committed") from error
    return manifest


def is_committed(prefix_uri: str) -> bool:
    return exists(join(prefix_uri, MANIFEST_NAME))


def fetch_committed(prefix_uri: str, local_dir: str | Path, only: str = "") -> dict[str, Any]:
    """Download a committed output (or the files under `only`), verifying every sha256."""
    manifest = read_manifest(prefix_uri)
    for rel, info in manifest["files"].items():
        if rel.startswith(only):
            download_file(committed_file_uri(prefix_uri, rel, info), Path(local_dir) / rel, info["sha256"])
    return manifest


def committed_file_uri(prefix_uri: str, rel: str, info: dict[str, Any]) -> str:
    """Where one file a manifest lists lies: under the prefix, or at the "uri" it references."""
    return str(info.get("uri") or join(prefix_uri, rel))


def read_committed_file(prefix_uri: str, rel: str) -> bytes:
    """Read one file of a committed output, verified against the manifest."""
    manifest = read_manifest(prefix_uri)
    if rel not in manifest["files"]:
        raise ObjectNotFound(f"{rel} is not part of {prefix_uri}")
    info = manifest["files"][rel]
    return get_bytes(committed_file_uri(prefix_uri, rel, info), info["sha256"])


def temp_dir(prefix: str = "gauntlet-") -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)


__all__ = [
    "MANIFEST_NAME",
    "WRITE_TOKEN_KEY",
    "S3Uri",
    "abort_multipart_upload",
    "canonical_json",
    "client",
    "commit_directory",
    "committed_file_uri",
    "delete_objects",
    "download_file",
    "download_object",
    "ensure_bucket",
    "exists",
    "fetch_committed",
    "get_bytes",
    "get_json",
    "get_json_with_etag",
    "get_object",
    "is_committed",
    "join",
    "list_multipart_uploads",
    "list_objects",
    "presigned_url",
    "put_bytes",
    "put_json",
    "read_committed_file",
    "read_manifest",
    "upload_file",
]
