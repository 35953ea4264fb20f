"""The rows of each window as one object in an S3 bucket (Amazon S3 or an S3-compatible store):
the file is made by crossdock.exports; the engine's S3 sender uploads it (one PutObject, or a
multipart upload completed at the end, so the object appears whole or not at all)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AnyHttpUrl, Field, field_validator, model_validator

from crossdock.destination import FileStore, S3Bucket, Secret
from crossdock.exports import ExportDestination, ExportSettings, export_manifest

MIB = 1024 * 1024
# S3's bucket naming rules (lower case, digits, dots, hyphens; 3 to 63 characters)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3Settings(ExportSettings):
    bucket: str = Field(description="the bucket's name")
    prefix: str = Field(default="", description="folders before every file name: exports/")
    region: str | None = Field(default=None, description="the bucket's region: eu-west-1")
    endpoint_url: AnyHttpUrl | None = Field(
        default=None, description="an S3-compatible store's URL (MinIO, Ceph, R2)")
    access_key_id: str | None = Field(
        default=None, description="with secret_access_key; else the standard AWS chain")
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = Field(default=None, description="with aws:kms: the key's id or ARN")
    multipart_threshold_mb: int = Field(default=8, ge=5, le=5 * 1024,
                                        description="files this large go up in parts")
    part_size_mb: int = Field(default=8, ge=5, le=5 * 1024,
                              description="S3 takes parts of 5 MiB to 5 GiB")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError("3 to 63 lower-case letters, digits, dots and hyphens, starting "
                             f"and ending with a letter or digit, got {value!r}")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError(f"folders separated by /, got {value!r}")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together (or leave "
                             "both out for the standard AWS chain)")
        if self.kms_key_id and self.server_side_encryption != "aws:kms":
            raise ValueError("kms_key_id needs server_side_encryption: aws:kms")
        return self


class S3Destination(ExportDestination[S3Settings]):
    manifest = export_manifest("s3", "Files (JSON lines, CSV) into an S3 bucket",
                               "docs/destinations/s3.md")

    def store(self) -> FileStore:
        s = self.settings
        return S3Bucket(
            s.bucket, region=s.region,
            endpoint_url=str(s.endpoint_url).rstrip("/") if s.endpoint_url else None,
            access_key_id=s.access_key_id, secret_access_key=s.secret_access_key,
            session_token=s.session_token, server_side_encryption=s.server_side_encryption,
            kms_key_id=s.kms_key_id, multipart_threshold=s.multipart_threshold_mb * MIB,
            part_size=s.part_size_mb * MIB)

    def prefix(self) -> str:
        return f"{self.settings.prefix}/" if self.settings.prefix else ""
