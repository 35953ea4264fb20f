"""The s3 destination against a real S3-compatible server process (moto_server on 127.0.0.1):
rows through a SQLite outbox and the delivery engine into objects, their bodies, content
type and server-side encryption, a multipart upload for a large file, what a killed attempt
left aborted, the egress guard, credentials from the AWS chain, a missing bucket retried into
the same name, and the settings' errors."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.s3 import S3Destination
from crossdock.plugins.s3.testserver import KEY_ID, REGION, SECRET, S3Server, s3_destination
from crossdock.testing.clock import ManualClock
from crossdock.testing.conformance import imports_beyond_the_public_api

#: 13:10 UTC: the 12:00 window of rows accepted at 12:10 has ended
T0 = datetime(2024, 5, 1, 12, 10, tzinfo=UTC).timestamp()
NOW = T0 + 3600


def config(tmp_path: Path, entry: dict[str, Any]) -> LoadedConfig:
    return parse_config({"destinations": {"lake": entry}}, base_dir=tmp_path, env={})


def enqueue(box: SQLiteOutbox, n: int, size: int = 0) -> None:
    box.enqueue([NewRow("lake", f"m{i}", {"messageId": f"m{i}", "type": "track",
                                          "event": "Saved", "pad": "x" * size})
                 for i in range(n)], now=T0)


def first_id(box: SQLiteOutbox) -> int:
    row = box.row("lake", "m0")
    assert row is not None
    return int(row["id"])


async def test_a_window_becomes_one_encrypted_object_under_the_prefix(
        tmp_path: Path, box: SQLiteOutbox, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    enqueue(box, 3)
    loaded = config(tmp_path, s3_destination(s3, bucket, prefix="raw/events/",
                                             compression="gzip", marker="manifest",
                                             server_side_encryption="AES256"))
    report = await deliver_once(loaded, box, clock=ManualClock(NOW))
    assert (report.delivered, report.requests, report.retried) == (3, 1, 0)
    key = f"raw/events/exports/lake/2024/05/01/1200-{first_id(box)}.jsonl.gz"
    objects = s3.objects(bucket)
    assert sorted(objects) == [key, f"{key}.manifest.json"]
    rows = [json.loads(line) for line in gzip.decompress(objects[key]).splitlines()]
    assert [r["messageId"] for r in rows] == ["m0", "m1", "m2"]
    assert json.loads(objects[f"{key}.manifest.json"])["rows"] == 3
    head = s3.client().head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "application/gzip"
    assert head["ServerSideEncryption"] == "AES256"
    assert "-" not in head["ETag"]  # one PutObject


async def test_a_large_file_goes_up_in_parts_and_appears_whole(
        tmp_path: Path, box: SQLiteOutbox, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    enqueue(box, 120, size=100_000)  # about 12 MB of JSON lines: three parts of 5 MiB
    loaded = config(tmp_path, s3_destination(s3, bucket, multipart_threshold_mb=5,
                                             part_size_mb=5))
    report = await deliver_once(loaded, box, clock=ManualClock(NOW))
    assert report.delivered == 120
    (key,) = s3.objects(bucket)
    body = s3.objects(bucket)[key]
    assert [json.loads(line)["messageId"] for line in body.splitlines()] == [
        f"m{i}" for i in range(120)]
    etag = s3.client().head_object(Bucket=bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith("-3")  # S3 names a multipart object's part count
    assert s3.uploads(bucket) == []


async def test_an_upload_a_killed_attempt_left_under_the_name_is_aborted(
        tmp_path: Path, box: SQLiteOutbox, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    enqueue(box, 60, size=100_000)
    key = f"exports/lake/2024/05/01/1200-{first_id(box)}.jsonl"
    left = s3.client().create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.client().upload_part(Bucket=bucket, Key=key, UploadId=left, PartNumber=1,
                            Body=b"half a file")
    loaded = config(tmp_path, s3_destination(s3, bucket, multipart_threshold_mb=5,
                                             part_size_mb=5))
    assert (await deliver_once(loaded, box, clock=ManualClock(NOW))).delivered == 60
    assert list(s3.objects(bucket)) == [key]
    assert s3.uploads(bucket) == []


async def test_a_missing_bucket_is_retried_and_the_file_lands_under_the_same_name(
        tmp_path: Path, box: SQLiteOutbox, s3: S3Server) -> None:
    bucket = "exports-not-made-yet-" + str(int(T0))[-6:]
    enqueue(box, 2)
    loaded = config(tmp_path, s3_destination(s3, bucket))
    clock = ManualClock(NOW)
    report = await deliver_once(loaded, box, clock=clock)
    assert report.retried == 2
    row = box.row("lake", "m0")
    assert row is not None and "NoSuchBucket" in row["last_error"]
    s3.client().create_bucket(Bucket=bucket, CreateBucketConfiguration={
        "LocationConstraint": REGION})
    box.enqueue([NewRow("lake", "late", {"messageId": "late"})], now=T0)  # not in that file
    clock.advance(86_400)
    assert (await deliver_once(loaded, box, clock=clock)).delivered == 3
    key = f"exports/lake/2024/05/01/1200-{first_id(box)}.jsonl"
    objects = s3.objects(bucket)
    assert [json.loads(line)["messageId"] for line in objects[key].splitlines()] == ["m0", "m1"]
    assert len(objects) == 2


async def test_a_loopback_endpoint_needs_the_private_network_opt_in(
        tmp_path: Path, box: SQLiteOutbox, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    enqueue(box, 1)
    loaded = config(tmp_path, s3_destination(s3, bucket, delivery={}))
    report = await deliver_once(loaded, box, clock=ManualClock(NOW))
    assert report.retried == 1
    row = box.row("lake", "m0")
    assert row is not None
    assert "egress guard: 127.0.0.1 is loopback" in row["last_error"]
    assert s3.objects(bucket) == {}


async def test_credentials_from_the_aws_chain(tmp_path: Path, box: SQLiteOutbox, s3: S3Server,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3.new_bucket()
    enqueue(box, 1)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    entry = s3_destination(s3, bucket)
    del entry["settings"]["access_key_id"], entry["settings"]["secret_access_key"]
    report = await deliver_once(config(tmp_path, entry), box, clock=ManualClock(NOW))
    assert report.delivered == 1 and len(s3.objects(bucket)) == 1


def test_settings_name_what_is_wrong() -> None:
    problems = "\n".join(S3Destination.parse_settings({
        "bucket": "My_Bucket", "access_key_id": "AKIA", "part_size_mb": 1,
        "server_side_encryption": "DES"})[1])
    assert "settings.bucket: " in problems and "lower-case letters" in problems
    assert "settings.part_size_mb: " in problems
    assert "settings.server_side_encryption: " in problems
    (pair,) = S3Destination.parse_settings({"bucket": "b-1", "access_key_id": "AKIA"})[1]
    assert "access_key_id and secret_access_key go together" in pair
    (kms,) = S3Destination.parse_settings({"bucket": "b-1", "kms_key_id": "k"})[1]
    assert "kms_key_id needs server_side_encryption: aws:kms" in kms


def test_the_secret_never_shows_in_the_store_or_the_plan() -> None:
    settings, problems = S3Destination.parse_settings({
        "bucket": "b-1", "access_key_id": KEY_ID, "secret_access_key": SECRET})
    assert settings is not None and not problems
    store = S3Destination(settings).store()
    assert SECRET not in repr(store) and SECRET not in store.target()


def test_the_plugin_imports_only_the_public_api() -> None:
    assert imports_beyond_the_public_api(S3Destination) == []
