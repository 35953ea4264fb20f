"""The rows of each window as one file in a folder of this machine: a volume a warehouse
loader, an ESP's import job or a sync tool (rclone, an S3 mount) picks files up from. The
file is made by crossdock.exports; the engine's local-folder sender writes it atomically."""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import Field, field_validator

from crossdock.destination import FileStore, LocalFolder
from crossdock.exports import ExportDestination, ExportSettings, export_manifest


class FilesSettings(ExportSettings):
    folder: str = Field(description="the absolute path of the folder files go into")

    @field_validator("folder")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not PurePosixPath(value).is_absolute():
            raise ValueError(f"an absolute path (/srv/exports), got {value!r}")
        return value


class FilesDestination(ExportDestination[FilesSettings]):
    manifest = export_manifest("files", "Files (JSON lines, CSV) into a folder of this machine",
                               "docs/destinations/files.md")

    def store(self) -> FileStore:
        return LocalFolder(self.settings.folder)
