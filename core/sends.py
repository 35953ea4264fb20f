"""What a destination hands the engine to send when it is not an HTTP request: a file to put
in a store (a local folder today; S3, SFTP and FTP next), or a message for another client.

A plugin stays pure: it returns `PlannedSend(FilePut(store, name, content), items)` from
`build_requests`, as an HTTP destination returns `PlannedRequest(httpx.Request, items)`. The
engine finds the sender registered for the send's `kind` (`crossdock.delivery.senders`),
does the I/O under the destination's timeout, rate limit and retries, and turns what happened
into one outcome per item: the sender's `Receipt` goes to the plugin's `classify_receipt`
(delivered unless the plugin says otherwise); a sender that fails is a retry, or a dead
letter when it says the send can never succeed.

Every type here is data: frozen, comparable, with no I/O and no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from pydantic import SecretStr


class Sendable:
    """Base of a non-HTTP send. A subclass is a frozen dataclass naming its `kind` (the key a
    sender is registered under: "file:local", "file:s3", ...) and where it goes, for errors
    and logs (`target()`, which must never hold a secret)."""

    @property
    def kind(self) -> str:
        raise NotImplementedError

    def target(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FileStore:
    """Where files go. Each store type names its `kind` and holds what its sender needs to
    reach it (a folder; later a bucket and its credentials, a host and its key)."""

    kind: ClassVar[str]

    def target(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class LocalFolder(FileStore):
    """A folder on the machine running the daemon (an absolute path)."""

    path: str
    kind: ClassVar[str] = "local"

    def __post_init__(self) -> None:
        if not PurePosixPath(self.path).is_absolute():
            raise ValueError(f"a local folder must be an absolute path, got {self.path!r}")

    def target(self) -> str:
        return f"folder {self.path}"


@dataclass(frozen=True, slots=True)
class S3Bucket(FileStore):
    """A bucket of Amazon S3 or of an S3-compatible store (`endpoint_url`: MinIO, Ceph, R2,
    a local test server). Without `access_key_id` the sender takes credentials from the
    standard AWS chain (environment, shared files, the instance's or task's role).
    `server_side_encryption`: "AES256" or "aws:kms" (with `kms_key_id`, or the bucket's AWS
    managed key). Files of `multipart_threshold` bytes or more go up in parts of
    `part_size` bytes."""

    bucket: str
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    # SecretStr: a store is logged and shown in errors through target(); repr hides it too.
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    multipart_threshold: int = 8 * 1024 * 1024
    part_size: int = 8 * 1024 * 1024
    kind: ClassVar[str] = "s3"

    def target(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3 bucket {self.bucket}{where}"


@dataclass(frozen=True, slots=True)
class SftpServer(FileStore):
    """A folder on an SFTP server. Signs in with `password`, `private_key` (OpenSSH or PEM
    text, with `passphrase` when it is encrypted), or both. The server's host key must be
    known: one of `host_key_fingerprints` ("SHA256:..."), or in the `known_hosts` file
    (default: ~/.ssh/known_hosts of the daemon's user); an unknown host is refused."""

    host: str
    username: str
    port: int = 22
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    passphrase: SecretStr | None = None
    host_key_fingerprints: tuple[str, ...] = ()
    known_hosts: str | None = None
    #: where file names start (relative to the login folder unless absolute)
    remote_dir: str = ""
    kind: ClassVar[str] = "sftp"

    def target(self) -> str:
        return f"sftp {self.username}@{self.host}:{self.port}/{self.remote_dir}".rstrip("/")


@dataclass(frozen=True, slots=True)
class FtpServer(FileStore):
    """A folder on an FTP server. `tls`: "required" (FTPS, explicit AUTH TLS, the data
    connections protected too; refused when the server does not offer it), "auto" (FTPS when
    the server offers it, plain FTP when it does not) or "off". `ca_file`: the certificates
    to trust (default: the system's)."""

    host: str
    username: str
    password: SecretStr
    port: int = 21
    tls: str = "auto"
    ca_file: str | None = None
    remote_dir: str = ""
    kind: ClassVar[str] = "ftp"

    def target(self) -> str:
        scheme = "ftp" if self.tls == "off" else "ftps"
        return f"{scheme} {self.username}@{self.host}:{self.port}/{self.remote_dir}".rstrip("/")


@dataclass(frozen=True, slots=True)
class FilePut(Sendable):
    """Put one file: `content` under `name` in `store`, replacing any file of that name.

    The sender writes to a temporary name beside it and renames it into place, so no reader
    ever sees part of a file under `name`, and a crash leaves nothing there. Make `name` a
    function of the items the file holds (their window, their first id): a retry of the same
    items then puts the same file again under the same name, which replaces it, instead of
    adding a second copy of the rows under another name.

    `name` is a relative path with "/" between folders ("exports/2024/05/01/1200-0001.jsonl");
    it may not climb out of the store ("..") or be absolute."""

    store: FileStore
    name: str
    content: bytes
    content_type: str = "application/octet-stream"

    #: small files put beside it once it is in place (a `_SUCCESS` flag, a manifest)
    markers: tuple[Marker, ...] = ()

    def __post_init__(self) -> None:
        check_file_name(self.name)

    @property
    def kind(self) -> str:
        return f"file:{self.store.kind}"

    def target(self) -> str:
        return f"{self.store.target()}: {self.name}"


@dataclass(frozen=True, slots=True)
class Marker:
    """A small file the sender puts beside a `FilePut`'s file once that file is in place
    (a `_SUCCESS` flag, a manifest of the file): a consumer that waits for it never reads a
    file still being written. Same rules for `name` as the file's."""

    name: str
    content: bytes = b""
    content_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        check_file_name(self.name)


@dataclass(frozen=True, slots=True)
class Window:
    """How a destination that writes files holds rows back (`Destination.window()`): the
    engine puts the rows accepted in one window of `every` seconds (aligned on the epoch, so
    in UTC: hourly windows start on the hour, daily ones at midnight) into one file once the
    window has ended, or sooner when `max_rows` rows or `max_bytes` bytes of payload wait.
    The rows of a file are kept together: a failed file is sent again with exactly its rows
    (docs/exports.md)."""

    every: float
    max_rows: int = 100_000
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.every <= 0 or self.max_rows < 1 or (self.max_bytes is not None
                                                     and self.max_bytes < 1):
            raise ValueError(f"a window needs every > 0, max_rows >= 1 and max_bytes >= 1, "
                             f"got {self}")

    def start(self, moment: float) -> float:
        """The start of the window holding `moment` (seconds since the epoch)."""
        return moment - moment % self.every


def check_file_name(name: str) -> None:
    """Refuse a name that is not a relative path of plain parts separated by "/"."""
    path = PurePosixPath(name)
    if (not name or path.is_absolute() or "\\" in name
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise ValueError(f"a file name is a relative path of plain parts separated by /, "
                         f"got {name!r}")


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a sender reports for a send that succeeded: where it went, and what the far side
    said (bytes written, an ETag), for `classify_receipt` and the logs."""

    target: str
    detail: str = ""
