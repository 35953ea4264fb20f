"""File exports: rows per second from a filled outbox into files, through the delivery engine
(`deliver_once`: lease the window, keep the batch, build the JSON-lines file with
crossdock.exports, put it with the sender, settle), against writing the same rows as JSON
lines with the store's library directly (orjson per row, then one put per file), in the same
run, into the same store:

    files   a folder of this machine      baseline: open, write, fsync, rename
    s3      moto_server on 127.0.0.1      baseline: boto3 put_object
    sftp    asyncssh's SFTP server,       baseline: asyncssh open, write, rename
            in-process on 127.0.0.1
    ftp     pyftpdlib with FTPS           baseline: ftplib's FTP_TLS STOR, rename
    parquet a local folder, format parquet baseline: pyarrow table of the same columns,
            (the mapping's columns)        write_table, fsync, rename

The rows are accepted two hours ago (their hourly window has ended) and `max_rows` is a quarter
of them: four files per run. S3 is left out, with the reason, when moto_server is missing;
Parquet when pyarrow (the `parquet` extra) is.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.common import Outcome, Row, Settings, elapsed, interleaved, sample_message
from crossdock.delivery import deliver_once
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox

FILES = 4
DEST = "export"


def _payloads(rows: int) -> list[dict[str, Any]]:
    return [sample_message(i) for i in range(rows)]


def run_ours(entry: dict[str, Any], rows: int) -> tuple[int, float]:
    """Fill an outbox (not timed), then time deliver_once draining it into FILES files."""
    with tempfile.TemporaryDirectory() as tmp:
        box = SQLiteOutbox(Path(tmp) / "outbox.db")
        box.enqueue([NewRow(DEST, f"m{i}", p) for i, p in enumerate(_payloads(rows))],
                    now=time.time() - 7200)
        loaded = parse_config({"destinations": {DEST: {
            **entry, "settings": {**entry["settings"], "max_rows": rows // FILES}}}},
            base_dir=Path(tmp), env={})
        start = time.perf_counter()
        report = asyncio.run(deliver_once(loaded, box))
        seconds = elapsed(start)
        box.close()
    if report.delivered != rows:
        raise RuntimeError(f"exports: delivered {report.delivered} of {rows}: {report}")
    return rows, seconds


def _files(rows: int) -> list[tuple[str, list[dict[str, Any]]]]:
    payloads = _payloads(rows)
    size = rows // FILES
    return [(f"raw/{secrets.token_hex(4)}-{n}.jsonl", payloads[n * size:(n + 1) * size])
            for n in range(FILES)]


def _lines(payloads: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(p) + b"\n" for p in payloads)


def run_raw_folder(folder: Path, rows: int) -> tuple[int, float]:
    files = _files(rows)
    start = time.perf_counter()
    for name, payloads in files:
        final = folder / name
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(f".{final.name}.part")
        with open(part, "wb") as out:
            out.write(_lines(payloads))
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, final)
    return rows, elapsed(start)


#: the Parquet files' columns: column name -> dotted path into the payload
PARQUET_COLUMNS = {"message_id": "messageId", "type": "type", "event": "event",
                   "user_id": "userId", "timestamp": "timestamp", "email": "traits.email"}


def run_raw_parquet(folder: Path, rows: int) -> tuple[int, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crossdock.destination import first_value

    files = _files(rows)
    start = time.perf_counter()
    for name, payloads in files:
        final = folder / name.replace(".jsonl", ".parquet")
        final.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({column: [first_value(p, path) for p in payloads]
                          for column, path in PARQUET_COLUMNS.items()})
        part = final.with_name(f".{final.name}.part")
        with open(part, "wb") as out:
            pq.write_table(table, out, compression="none")
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, final)
    return rows, elapsed(start)


def run_raw_s3(client: Any, bucket: str, rows: int) -> tuple[int, float]:
    files = _files(rows)
    start = time.perf_counter()
    for name, payloads in files:
        client.put_object(Bucket=bucket, Key=name, Body=_lines(payloads),
                          ContentType="application/x-ndjson")
    return rows, elapsed(start)


def run_raw_ftp(port: int, password: str, ca_file: str, rows: int) -> tuple[int, float]:
    import ftplib
    import io
    import ssl

    from crossdock.plugins.ftp.testserver import USER

    files = _files(rows)
    start = time.perf_counter()
    for name, payloads in files:  # one connection per file, as the sender does
        with ftplib.FTP_TLS(context=ssl.create_default_context(cafile=ca_file)) as ftp:
            ftp.connect("127.0.0.1", port)
            ftp.login(USER, password)
            ftp.prot_p()
            with contextlib.suppress(ftplib.error_perm):
                ftp.mkd("raw")
            ftp.storbinary(f"STOR {name}.part", io.BytesIO(_lines(payloads)))
            ftp.rename(f"{name}.part", name)
    return rows, elapsed(start)


def run_raw_sftp(port: int, password: str, fingerprint: str, rows: int) -> tuple[int, float]:
    import asyncssh

    files = _files(rows)

    async def put() -> float:
        known = asyncssh.import_known_hosts("")

        class Client(asyncssh.SSHClient):  # type: ignore[misc]
            def validate_host_public_key(self, host: str, addr: str, port: int,
                                         key: Any) -> bool:
                return str(key.get_fingerprint("sha256")) == fingerprint

        start = time.perf_counter()
        for name, payloads in files:  # one connection per file, as the sender does
            async with asyncssh.connect(
                    "127.0.0.1", port, username="demo", password=password, known_hosts=known,
                    client_factory=Client, agent_path=None, config=None,
                    client_keys=None) as conn, conn.start_sftp_client() as sftp:
                await sftp.makedirs("raw", exist_ok=True)
                async with sftp.open(f"{name}.part", "wb") as out:
                    await out.write(_lines(payloads))
                await sftp.posix_rename(f"{name}.part", name)
        return elapsed(start)

    return rows, asyncio.run(put())


def bench(settings: Settings) -> Outcome:
    from crossdock.plugins.ftp.testserver import ftp_server
    from crossdock.plugins.s3.testserver import moto_server_program, s3_server
    from crossdock.plugins.sftp.demo import USER, sftp_server

    rows = settings.size(20_000, 200)
    result = Outcome(detail={"row_count": rows, "files": FILES})
    private = {"allow_private_network": True}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-exports-")))
        runs: dict[str, tuple[Callable[[], tuple[int, float]],
                              Callable[[], tuple[int, float]], str]] = {}
        folder = tmp / "folder"
        folder.mkdir()
        runs["files"] = (
            lambda: run_ours({"plugin": "files", "settings": {"folder": str(folder)}}, rows),
            lambda: run_raw_folder(folder, rows), "a local folder")
        if importlib.util.find_spec("pyarrow") is None:
            result.detail["parquet_skipped"] = "pyarrow is not installed (crossdock[parquet])"
        else:
            (tmp / "parquet").mkdir()
            runs["parquet"] = (
                lambda: run_ours({"plugin": "files", "settings": {
                    "folder": str(tmp / "parquet"), "format": "parquet"},
                    "mapping": {"options": {"columns": PARQUET_COLUMNS}}}, rows),
                lambda: run_raw_parquet(tmp / "parquet", rows), "a local folder")
        if moto_server_program() is not None:
            server = stack.enter_context(s3_server(tmp / "moto.log"))
            bucket = server.new_bucket()
            runs["s3"] = (
                lambda: run_ours({"plugin": "s3", "delivery": private, "settings": {
                    "bucket": bucket, "endpoint_url": server.url, "region": "eu-west-1",
                    "access_key_id": "AKIABENCH", "secret_access_key": "bench"}}, rows),
                lambda: run_raw_s3(server.client(), bucket, rows), "moto_server")
        else:
            result.detail["s3_skipped"] = "moto_server is not installed (crossdock[test])"
        password = secrets.token_urlsafe(12)
        root = tmp / "sftp"
        root.mkdir()
        port, fingerprint = stack.enter_context(sftp_server(root, password))
        runs["sftp"] = (
            lambda: run_ours({"plugin": "sftp", "delivery": private, "settings": {
                "host": "127.0.0.1", "port": port, "username": USER, "password": password,
                "host_key_fingerprint": fingerprint}}, rows),
            lambda: run_raw_sftp(port, password, fingerprint, rows), "asyncssh's server")
        if importlib.util.find_spec("pyftpdlib") is None:
            result.detail["ftp_skipped"] = "pyftpdlib is not installed (crossdock[test])"
        else:
            (tmp / "ftp").mkdir()
            ftps = stack.enter_context(ftp_server(tmp / "ftp", tls=True))
            assert ftps.ca_file is not None
            ca = ftps.ca_file
            runs["ftp"] = (
                lambda: run_ours(ftps.destination(), rows),
                lambda: run_raw_ftp(ftps.port, ftps.password, ca, rows), "pyftpdlib, FTPS")
        for name, (ours, raw, where) in runs.items():
            rates = interleaved({"ours": ours, "raw": raw}, settings.repeats)
            result.detail[name] = {"ours_rows_per_s": rates["ours"],
                                   "raw_rows_per_s": rates["raw"]}
            kind = "Parquet" if name == "parquet" else "JSON-lines"
            result.rows.append(Row(
                "exports", f"{name}: outbox → {kind} files ({where})", "rows/s",
                rates["ours"], rates["raw"], "the library writing the same files"))
    return result
