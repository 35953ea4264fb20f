"""Operator JavaScript run in V8 isolates, away from the daemon (host.py).

    runner = FunctionRunner(Limits(timeout=1.0, memory_mb=64))
    fn = runner.load(FunctionCode("tidy.js", source, libraries=[("hashing", code)]),
                     entries=("transformEvent",))
    [result] = fn.call("transformEvent", [(event, metadata)])
    result.value / result.error / result.logs

Every isolate holds the libraries and the function's code and nothing else: no `require`,
no `import` of modules, no `fetch`, no timers, no files, no process. Each call has a time
limit and the isolate a memory limit; a call that throws, runs too long or runs out of memory
gets an error as its result (the next call gets a fresh isolate), and when V8 ends its whole
process (a fatal out of memory) the runner says so for the calls in flight and starts a new
process for the next. Nothing a function does raises in the caller.

Protocol with host.py, one JSON object a line each way:
    {"op": "load", "key", "source", "libraries": [[name, code]], "entries": [name]}
        -> {"ok": true, "defined": [the entries it defines]}
         | {"error": "tidy.js:3: SyntaxError: ..."}
    {"op": "call", "key", "entry", "args": [[event, metadata], ...], "timeout": seconds}
        (each message's arguments: [event, metadata] for transformEvent, [event, settings,
        metadata] for a destination function's onEvent)
        (the batch in one V8 call; on a timeout or out of memory, each again on its own)
        -> {"results": [{"ok": {"returned", "value", "logs"}} | {"error": "..."}]}
"""

from __future__ import annotations

import collections
import hashlib
import logging
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

log = logging.getLogger("crossdock.functions")

class FunctionLoadError(Exception):
    """The function or a library does not compile (a SyntaxError, a throw at the top level)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per call: `timeout` seconds; per isolate: `memory_mb` of V8 heap."""

    timeout: float = 1.0
    memory_mb: int = 64


@dataclass(frozen=True, slots=True)
class FunctionCode:
    """A function's source and the libraries (name, code) evaluated before it."""

    name: str
    source: str
    libraries: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        digest = hashlib.sha256(orjson.dumps([self.source, self.libraries])).hexdigest()
        return f"{self.name}:{digest[:16]}"


@dataclass(slots=True)
class CallResult:
    """One call's outcome: `error` set when it failed, else `value` (None for `null`)
    and whether the function returned anything at all (`returned`)."""

    value: Any = None
    returned: bool = True
    error: str | None = None
    logs: list[str] = field(default_factory=list)


class FunctionRunner:
    """One host process for the functions of one daemon; calls are serialized (a lock)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._loaded: dict[str, tuple[FunctionCode, tuple[str, ...]]] = {}
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)

    def load(self, code: FunctionCode, entries: Sequence[str]) -> LoadedFunction:
        """Compile the function (and its libraries) in the host; FunctionLoadError if it
        does not."""
        with self._lock:
            self._loaded[code.key] = (code, tuple(entries))
            answer = self._ask(self._load_request(code.key))
        if answer is None:
            raise FunctionLoadError(f"{code.name}: the function process ended while loading "
                                    f"it{self._last_words()}")
        if "error" in answer:  # V8's message names the file (or library) and line
            raise FunctionLoadError(str(answer["error"]))
        return LoadedFunction(self, code, frozenset(answer["defined"]))

    def call(self, code: FunctionCode, entry: str,
             args: Sequence[Sequence[Any]]) -> list[CallResult]:
        """`entry(*arguments)` for each message's arguments, in order; one result each."""
        pending = [list(pair) for pair in args]
        with self._lock:
            answer = self._call(code, entry, pending)
            if answer is not None:
                return [_result(raw) for raw in answer]
            # The process ended (V8's fatal out of memory) or was ended by the watchdog
            # while it ran the batch: each message again, one request each (a new process
            # after each that ends it), so that only the one at fault fails.
            results: list[CallResult] = []
            for pair in pending if len(pending) > 1 else []:
                one = self._call(code, entry, [pair])
                results.append(_result(one[0]) if one is not None else self._ended())
            return results or [self._ended()]

    def _call(self, code: FunctionCode, entry: str,
              pending: list[list[Any]]) -> list[dict[str, Any]] | None:
        timeout = self.limits.timeout
        answer = self._ask({"op": "call", "key": code.key, "entry": entry, "args": pending,
                            "timeout": timeout},
                           deadline=(len(pending) + 1) * (timeout * 2 + 1) + 2)
        return None if answer is None else list(answer["results"])

    def _ended(self) -> CallResult:
        return CallResult(error="ran out of memory or time: the function process was ended"
                                f"{self._last_words()}")

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- the host process ---------------------------------------------------------------

    def _load_request(self, key: str) -> dict[str, Any]:
        code, entries = self._loaded[key]
        return {"op": "load", "key": key, "source": code.source,
                "libraries": [list(pair) for pair in code.libraries], "entries": list(entries)}

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "crossdock.functions.host", str(self.limits.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._stderr.clear()
        assert process.stderr is not None
        threading.Thread(target=self._drain, args=(process.stderr,), daemon=True,
                         name="crossdock-functions-stderr").start()
        self._process = process
        # A new process knows no function yet: load every one (they compiled before).
        for key in self._loaded:
            if self._exchange(process, self._load_request(key), 30) is None:
                break
        return process

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

    def _last_words(self) -> str:
        fatal = [line for line in self._stderr if "out of memory" in line.lower()]
        return f" ({fatal[-1].strip('# ')})" if fatal else ""

    def _ask(self, request: dict[str, Any], deadline: float = 30) -> dict[str, Any] | None:
        process = self._process
        if process is None or process.poll() is not None:
            process = self._start()
        return self._exchange(process, request, deadline)

    def _exchange(self, process: subprocess.Popen[bytes], request: dict[str, Any],
                  deadline: float) -> dict[str, Any] | None:
        """Send one request and read its answer; None when the process ended, or was ended
        because it did not answer within `deadline` seconds (V8's own time limit failed to
        stop a builtin in time)."""
        assert process.stdin is not None and process.stdout is not None
        watchdog = threading.Timer(deadline, process.kill)
        watchdog.start()
        try:
            process.stdin.write(orjson.dumps(request) + b"\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        finally:
            watchdog.cancel()
        if not line:
            process.kill()
            process.wait()
            log.warning("the function process ended (exit %s); a new one starts for the next "
                        "call%s", process.returncode, self._last_words())
            self._process = None
            return None
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()


class LoadedFunction:
    """A function compiled in a runner: call its entry points."""

    def __init__(self, runner: FunctionRunner, code: FunctionCode,
                 defined: frozenset[str] = frozenset()) -> None:
        self.runner = runner
        self.code = code
        #: the entry points the code defines (of those it was loaded for)
        self.defined = defined

    @property
    def name(self) -> str:
        return self.code.name

    @property
    def fingerprint(self) -> str:
        """Its code, libraries and limits: equal fingerprints run the same."""
        limits = self.runner.limits
        return f"{self.code.key}:{limits.timeout:g}s:{limits.memory_mb}MB"

    def call(self, entry: str, args: Sequence[Sequence[Any]]) -> list[CallResult]:
        return self.runner.call(self.code, entry, args)


def _result(raw: dict[str, Any]) -> CallResult:
    if "error" in raw:
        return CallResult(error=str(raw["error"]))
    ok = raw["ok"]
    return CallResult(value=ok["value"], returned=bool(ok["returned"]), logs=list(ok["logs"]))
