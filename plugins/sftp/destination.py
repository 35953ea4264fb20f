"""The rows of each window as one file on an SFTP server, signing in with a password or an
SSH key: the file is made by crossdock.exports; the engine's SFTP sender uploads it under a
temporary name and renames it into place, after checking the server's host key."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from crossdock.destination import FileStore, Secret, SftpServer
from crossdock.exports import (
    ExportDestination,
    ServerExportSettings,
    absolute_path,
    export_manifest,
)

# What `ssh-keygen -lf` prints for a key: SHA256: and 43 characters of unpadded base64
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


class SftpSettings(ServerExportSettings):
    port: int = Field(default=22, ge=1, le=65535)
    password: Secret | None = Field(default=None, description="password authentication")
    private_key: Secret | None = Field(
        default=None, description="SSH key authentication: the private key's text "
                                  "(OpenSSH or PEM), e.g. ${SFTP_PRIVATE_KEY}")
    passphrase: Secret | None = Field(default=None, description="of an encrypted private key")
    host_key_fingerprint: list[str] = Field(
        default_factory=list, description="the server's host key: SHA256:... as "
                                          "ssh-keygen -lf prints it (one or more)")
    known_hosts: str | None = Field(
        default=None, description="a known_hosts file instead (default: ~/.ssh/known_hosts)")

    _known_hosts = field_validator("known_hosts")(absolute_path)

    @field_validator("host_key_fingerprint", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprints(cls, value: list[str]) -> list[str]:
        for fingerprint in value:
            if not _FINGERPRINT.match(fingerprint):
                raise ValueError("SHA256: and 43 base64 characters, as `ssh-keygen -lf "
                                 f"KEY.pub` prints it, got {fingerprint!r}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SftpSettings:
        if self.password is None and self.private_key is None:
            raise ValueError("give password or private_key (or both)")
        if self.passphrase is not None and self.private_key is None:
            raise ValueError("passphrase goes with private_key")
        if self.host_key_fingerprint and self.known_hosts is not None:
            raise ValueError("give host_key_fingerprint or known_hosts, not both")
        if self.private_key is not None:
            problem = _key_problem(self.private_key.get_secret_value(),
                                   self.passphrase.get_secret_value()
                                   if self.passphrase else None)
            if problem:
                raise ValueError(f"private_key: {problem}")
        return self


def _key_problem(text: str, passphrase: str | None) -> str | None:
    """Why the key cannot be read (never quoting it), or None; None too without asyncssh
    (the sender says it is missing)."""
    try:
        import asyncssh
    except ModuleNotFoundError:
        return None
    try:
        asyncssh.import_private_key(text, passphrase)
    except asyncssh.KeyEncryptionError as exc:  # asyncssh's words never quote the key
        return f"cannot be decrypted: {exc} (the passphrase setting)"
    except asyncssh.KeyImportError as exc:
        if "Passphrase must be specified" in str(exc):
            return "is encrypted: give its passphrase"
        return "not a private key (OpenSSH or PEM text)"
    return None


class SftpDestination(ExportDestination[SftpSettings]):
    manifest = export_manifest("sftp", "Files (JSON lines, CSV) on an SFTP server, "
                                       "password or SSH key", "docs/destinations/sftp.md")

    def store(self) -> FileStore:
        s = self.settings
        return SftpServer(s.host, s.username, port=s.port, password=s.password,
                          private_key=s.private_key, passphrase=s.passphrase,
                          host_key_fingerprints=tuple(s.host_key_fingerprint),
                          known_hosts=s.known_hosts, remote_dir=s.remote_dir)
