"""The benchmarks at tiny sizes, so they cannot rot: every benchmark runs end to end and
reports a positive figure for every measure, and the JSON has every key. No timing is judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ["route", "outbox", "delivery", "collector", "latency", "collector_latency",
              "profile_scale", "memory", "scale", "exports", "functions", "console"]
ROW_KEYS = {"benchmark", "measure", "unit", "ours", "baseline", "baseline_name", "target",
            "met", "ratio"}


def test_quick_run_reports_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) == {"meta", "benchmarks", "table"}
    assert report["meta"]["quick"] is True
    assert list(report["benchmarks"]) == BENCHMARKS
    for name, result in report["benchmarks"].items():
        assert result["rows"], f"{name} reported nothing"
        for row in result["rows"]:
            assert set(row) == ROW_KEYS, name
            assert row["ours"] > 0, f"{name}: {row['measure']} is {row['ours']}"
            if row["baseline"] is not None:
                assert row["baseline"] > 0 and row["ratio"] > 0, f"{name}: {row['measure']}"
    detail = report["benchmarks"]
    assert detail["route"]["rows_per_s"] > 0 and detail["route"]["raw_rows_per_s"] > 0
    assert detail["outbox"]["rows_per_s"] > 0 and detail["outbox"]["raw_rows_per_s"] > 0
    assert detail["outbox"]["unordered_rows_per_s"] > 0
    assert detail["outbox"]["rows_per_cpu_s"] > 0 and detail["outbox"]["raw_rows_per_cpu_s"] > 0
    for how in ("chunked", "one_transaction"):
        cleanup = detail["outbox"]["cleanup"][how]
        assert cleanup["longest_wait_ms"] > 0 and cleanup["mb_before"] > 0
    for mode, key in (("single", "req_per_s"), ("batched", "msg_per_s")):
        for side in ("ours", "httpx", "bare"):
            assert detail["delivery"][mode][f"{side}_{key}"] > 0
    for endpoint in ("track", "batch"):
        assert detail["collector"][endpoint]["ours_req_per_s"] > 0
        assert detail["collector"][endpoint]["bare_req_per_s"] > 0
    for mode in ("single", "batched"):
        latency = detail["latency"][mode]
        assert latency["messages"] > 0 and latency["p99_ms"] >= latency["p50_ms"] > 0
    through = detail["collector_latency"]
    engines = ["sqlite"] + (["postgresql"] if "postgresql_skipped" not in through else [])
    for engine in engines:
        assert through[engine]["messages"] > 0
        assert through[engine]["p99_ms"] >= through[engine]["p50_ms"] > 0
    cpu_keys = {"/v1/track", "/bare/v1/track", "/v1/batch", "/bare/v1/batch"}
    assert set(detail["collector"]["server_cpu_ms_per_request"]) == cpu_keys
    if "postgresql_skipped" not in detail["collector"]:
        on_pg = detail["collector"]["postgresql"]
        assert set(on_pg["server_cpu_ms_per_request"]) == cpu_keys
        # the PostgreSQL backends serving the collector, found by their application name
        assert set(on_pg["postgresql_cpu_ms_per_request"]) == cpu_keys
        assert on_pg["postgresql_cpu_ms_per_request"]["/v1/batch"] > 0
        assert on_pg["track"]["ours_req_per_s"] > 0 and on_pg["batch"]["ours_req_per_s"] > 0
    scaled = detail["profile_scale"]["results"]
    assert len(scaled) == 3
    assert all(r["messages_per_s"] > 0 and r["peak_mb"] > 0 for r in scaled.values())
    memory = detail["memory"]
    assert memory["fill"]["rows"] == memory["queued_rows"] == memory["drain"]["queued_at_start"]
    assert memory["drain"]["delivered"] == memory["queued_rows"]
    assert memory["fill"]["peak_rss_mb"] > 0 and memory["drain"]["peak_rss_mb"] > 0
    scale = detail["scale"]
    # The PostgreSQL daemons are measured when the server is there, else skipped with a reason.
    daemons = ["daemons_msg_per_s"] if "daemons_skipped" not in scale else []
    assert daemons or scale["daemons_skipped"].startswith("PostgreSQL daemons not measured: ")
    for key in ("concurrency_msg_per_s", "processes_msg_per_s", *daemons):
        assert set(scale[key]) == {"1", "2", "4"}
        assert all(v > 0 for v in scale[key].values())
    for name in ("files", "s3", "sftp", "ftp"):
        exported = detail["exports"][name]
        assert exported["ours_rows_per_s"] > 0 and exported["raw_rows_per_s"] > 0
    for mode in ("single", "batched"):
        functions = detail["functions"][mode]
        assert functions["function_msg_per_s"] > 0 and functions["none_msg_per_s"] > 0
    destination = detail["functions"]["destination"]
    assert destination["function_msg_per_s"] > 0 and destination["webhook_msg_per_s"] > 0
    # The printed table has a line per measure.
    measures = sum(len(r["rows"]) for r in detail.values())
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == measures + 1  # and the header


def test_scale_skips_the_postgresql_daemons_when_the_server_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.scale import daemon_fleet

    with daemon_fleet("postgresql://postgres@127.0.0.1:1/test", "http://127.0.0.1:9") as fleet:
        assert isinstance(fleet, str)
        assert fleet.startswith("PostgreSQL at postgresql://postgres@127.0.0.1:1/test is "
                                "unreachable: ")
