"""The S3 sender: a `FilePut` into an `S3Bucket` (Amazon S3 or an S3-compatible store), with
boto3 (the `crossdock[s3]` extra; docs/destinations/s3.md says why boto3).

An object appears whole or not at all: a small file is one PutObject; a file of
`multipart_threshold` bytes or more goes up in parts and appears only when the upload is
completed. A failed part aborts the upload; a daemon killed mid-upload leaves an incomplete
upload, which is invisible to readers, and the next attempt at the same name (the kept batch,
docs/exports.md) aborts what is left under that name before starting again. Markers are put
after the file.

The engine owns retries: botocore is told to try each call once. A client error that no retry
can cure (a request S3 calls invalid) is a `SendRefused`; everything else (a bucket not there
yet, access denied until a policy is fixed, throttling, a dropped connection) is retried by the
engine until `max_age`.

The egress guard: the endpoint's name is resolved and every address checked before each file
(boto3 connects through urllib3, which has no hook per address), so a loopback or private
endpoint needs `delivery.allow_private_network: true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from crossdock.delivery.guard import check_address
from crossdock.delivery.sending import SendOptions, SendRefused
from crossdock.sends import FilePut, Receipt, S3Bucket, Sendable

#: S3 error codes no retry can cure: the request itself is wrong
PERMANENT_ERRORS = frozenset({
    "InvalidArgument", "InvalidRequest", "KeyTooLongError", "EntityTooLarge",
    "InvalidEncryptionAlgorithmError", "InvalidStorageClass", "MetadataTooLarge",
    "InvalidBucketName",
})


class S3Sender:
    """Puts files into S3 buckets; one boto3 client per bucket settings, made on first use."""

    def __init__(self) -> None:
        self._clients: dict[S3Bucket, Any] = {}
        self._lock = threading.Lock()

    async def send(self, send: Sendable, options: SendOptions) -> Receipt:
        if not isinstance(send, FilePut) or not isinstance(send.store, S3Bucket):
            raise SendRefused(f"the S3 sender cannot send {send.kind}")
        store = send.store
        if not options.allow_private_network:
            await _check_endpoint(store)
        return await asyncio.to_thread(self._put, send, store)

    def _client(self, store: S3Bucket) -> Any:
        with self._lock:
            client = self._clients.get(store)
            if client is None:
                client = self._clients[store] = _make_client(store)
            return client

    def _put(self, put: FilePut, store: S3Bucket) -> Receipt:
        from botocore.exceptions import ClientError

        client = self._client(store)
        extra: dict[str, Any] = {"ContentType": put.content_type}
        if store.server_side_encryption:
            extra["ServerSideEncryption"] = store.server_side_encryption
            if store.kms_key_id:
                extra["SSEKMSKeyId"] = store.kms_key_id
        try:
            if len(put.content) >= store.multipart_threshold:
                etag = _multipart(client, store, put.name, put.content, extra)
                how = "multipart"
            else:
                etag = client.put_object(Bucket=store.bucket, Key=put.name, Body=put.content,
                                         **extra)["ETag"]
                how = "put"
            for marker in put.markers:
                client.put_object(Bucket=store.bucket, Key=marker.name, Body=marker.content,
                                  **{**extra, "ContentType": marker.content_type})
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in PERMANENT_ERRORS:
                raise SendRefused(f"S3 refused the file: {code}: {error.get('Message', '')}"
                                  ) from exc
            raise
        return Receipt(put.target(), f"{how} {len(put.content)} bytes, ETag {etag}")


def _multipart(client: Any, store: S3Bucket, key: str, content: bytes,
               extra: dict[str, Any]) -> str:
    """Upload `content` in parts; the object appears when the upload completes. What an
    earlier attempt at this key left (its daemon killed) is aborted first: invisible, but
    stored and billed until then."""
    listed = client.list_multipart_uploads(Bucket=store.bucket, Prefix=key)
    for upload in listed.get("Uploads", []):
        if upload["Key"] == key:
            client.abort_multipart_upload(Bucket=store.bucket, Key=key,
                                          UploadId=upload["UploadId"])
    upload_id = client.create_multipart_upload(Bucket=store.bucket, Key=key, **extra)["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, len(content), store.part_size), start=1):
            answer = client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload_id,
                                        PartNumber=number,
                                        Body=content[start:start + store.part_size])
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        done = client.complete_multipart_upload(Bucket=store.bucket, Key=key,
                                                UploadId=upload_id,
                                                MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):  # else the next attempt aborts it (above)
            client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
        raise
    return str(done["ETag"])


def _make_client(store: S3Bucket) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ModuleNotFoundError as exc:  # retried: installing the extra delivers the rows
        raise ModuleNotFoundError("the s3 destination needs boto3: pip install "
                                  "'crossdock[s3]'") from exc
    session = boto3.session.Session(
        aws_access_key_id=store.access_key_id,
        aws_secret_access_key=(store.secret_access_key.get_secret_value()
                               if store.secret_access_key else None),
        aws_session_token=(store.session_token.get_secret_value()
                           if store.session_token else None),
        region_name=store.region)
    # One try per call: the engine retries (with backoff, the circuit and max_age), once.
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=10, read_timeout=60,
                    # an endpoint of its own (MinIO, a test server) seldom has
                    # bucket-named hosts
                    s3={"addressing_style": "path" if store.endpoint_url else "auto"})
    return session.client("s3", endpoint_url=store.endpoint_url, config=config)


async def _check_endpoint(store: S3Bucket) -> None:
    """Refuse (EgressRefused, retried) an endpoint resolving to an address the guard
    refuses."""
    if store.endpoint_url:
        parts = urlsplit(store.endpoint_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    else:
        region = store.region or "us-east-1"
        host, port = f"s3.{region}.amazonaws.com", 443
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in found:
        check_address(str(sockaddr[0]))
