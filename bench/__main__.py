"""python -m bench [--quick] [--only NAME ...] [--out PATH] [--repeats N]

Runs every benchmark (route, outbox, delivery, collector, latency, collector_latency,
profile_scale, memory, scale, exports, functions, console), prints a
Markdown table of our figures beside the raw baselines measured in the same run, and writes
everything to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    collector,
    collector_latency,
    console,
    delivery,
    exports,
    functions,
    latency,
    memory,
    outbox,
    profile_scale,
    route,
    scale,
)
from bench.common import ROOT, Outcome, Row, Settings

BENCHMARKS: dict[str, Callable[[Settings], Outcome]] = {
    "route": route.bench,
    "outbox": outbox.bench,
    "delivery": delivery.bench,
    "collector": collector.bench,
    "latency": latency.bench,
    "collector_latency": collector_latency.bench,
    "profile_scale": profile_scale.bench,
    "memory": memory.bench,
    "scale": scale.bench,
    "exports": exports.bench,
    "functions": functions.bench,
    "console": console.bench,
}
DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | measure | ours | baseline | ratio | target |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        baseline = f"{fmt(r.baseline)} {r.unit} ({r.baseline_name})" if r.baseline else ""
        ratio = f"{r.ratio:.0%}" if r.ratio is not None else ""
        target = r.target + ("" if r.met is None else (" met" if r.met else " **missed**"))
        lines.append(f"| {r.benchmark} | {r.measure} | {fmt(r.ours)} {r.unit} | {baseline} | "
                     f"{ratio} | {target} |")
    return "\n".join(lines)


def run(names: list[str], settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rows: list[Row] = []
    for name in names:
        start = time.perf_counter()
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        outcome = BENCHMARKS[name](settings)
        took = time.perf_counter() - start
        print(f"   {name} done in {took:.1f}s", file=sys.stderr, flush=True)
        rows += outcome.rows
        clash = {"seconds", "rows"} & set(outcome.detail)
        if clash:
            raise RuntimeError(f"{name}: detail may not use the keys {sorted(clash)}")
        results[name] = {
            **outcome.detail,
            "seconds": took,
            "rows": [{**asdict(r), "ratio": r.ratio} for r in outcome.rows],
        }
    return {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": settings.quick, "repeats": settings.repeats,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "benchmarks": results,
        "table": table(rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (CI)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--repeats", type=int, help="runs per figure (median); default 3")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    settings = Settings(quick=args.quick, repeats=repeats)
    start = time.perf_counter()
    report = run(args.only or list(BENCHMARKS), settings)
    report["meta"]["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(report["table"])
    print(f"\n{report['meta']['seconds']:.0f}s; JSON in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
