"""An FTP server for the tests, the demo and the benchmarks: pyftpdlib's (`python -m
pyftpdlib`, from pyftpdlib[ssl] in crossdock[test]) run as a real process on 127.0.0.1 with a
user and a folder, and, for FTPS, a certificate for 127.0.0.1 issued by a CA made for the run
(the client trusts that CA through the `ca_file` setting)."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossdock.testing.fakeserver import free_port, server_process

USER = "exporter"


@dataclass
class FtpTestServer:
    port: int
    root: Path
    password: str
    #: the CA that issued the server's certificate (FTPS), else None
    ca_file: str | None

    def destination(self, **settings: Any) -> dict[str, Any]:
        """A config entry of an ftp destination signing in to this server."""
        delivery = settings.pop("delivery", {"allow_private_network": True})
        tls = {"tls": "required", "ca_file": self.ca_file} if self.ca_file else {"tls": "off"}
        return {"plugin": "ftp", "delivery": delivery, "settings": {
            "host": "127.0.0.1", "port": self.port, "username": USER,
            "password": self.password, **tls, **settings}}


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crossdock test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextmanager
def ftp_server(folder: Path, *, tls: bool) -> Iterator[FtpTestServer]:
    """pyftpdlib on a free port of 127.0.0.1, serving `folder`/root to USER (with FTPS when
    `tls`), until the block ends."""
    root = folder / "root"
    root.mkdir()
    port = free_port()
    password = secrets.token_urlsafe(12)
    argv = [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port), "-w",
            # --password=: a token starting with "-" would read as an option after -P
            "-d", str(root), "-u", USER, f"--password={password}"]
    ca_file = None
    if tls:
        ca, cert, key = make_certificates(folder)
        argv += ["--tls", "--certfile", str(cert), "--keyfile", str(key)]
        ca_file = str(ca)
    with server_process(argv, port, folder / "pyftpdlib.log"):
        yield FtpTestServer(port, root, password, ca_file)
