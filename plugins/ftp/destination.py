"""The rows of each window as one file on an FTP server, FTPS where the server offers it: the
file is made by crossdock.exports; the engine's FTP sender stores it under a temporary name
and renames it into place."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crossdock.destination import FileStore, FtpServer, Secret
from crossdock.exports import (
    ExportDestination,
    ServerExportSettings,
    absolute_path,
    export_manifest,
)


class FtpSettings(ServerExportSettings):
    port: int = Field(default=21, ge=1, le=65535)
    password: Secret
    tls: Literal["required", "auto", "off"] = Field(
        default="auto", description="required: FTPS or nothing; auto: FTPS when the server "
                                    "offers it; off: plain FTP")
    ca_file: str | None = Field(default=None,
                                description="certificates to trust (default: the system's)")

    _ca_file = field_validator("ca_file")(absolute_path)


class FtpDestination(ExportDestination[FtpSettings]):
    manifest = export_manifest("ftp", "Files (JSON lines, CSV) on an FTP server, FTPS where "
                                      "offered", "docs/destinations/ftp.md")

    def store(self) -> FileStore:
        s = self.settings
        return FtpServer(s.host, s.username, s.password, port=s.port, tls=s.tls,
                         ca_file=s.ca_file, remote_dir=s.remote_dir)
