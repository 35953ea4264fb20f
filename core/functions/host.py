"""The process that runs operator JavaScript: `python -m crossdock.functions.host MEMORY_MB`.

It reads one JSON request a line on stdin and answers one JSON line on stdout (protocol in
runtime.py). Functions run here and not in the daemon because V8 ends the whole process on
some allocations (a fatal "out of memory" for one huge array, which mini-racer's memory
check cannot catch in time): here that ends only this process, the daemon answers the
message as dead-lettered and starts a new one.
"""

from __future__ import annotations

import resource
import sys
import threading
from typing import Any

import orjson
from py_mini_racer import JSOOMException, JSTimeoutException, MiniRacer, init_mini_racer

#: what each isolate starts with: nothing but the language. mini-racer's timer helpers are
#: taken away (a function runs synchronously), console.log collects lines for
#: `crossdock functions test` (at most 100 lines of 1,000 characters per call).
_PRELUDE = """
delete globalThis.setTimeout; delete globalThis.clearTimeout; delete globalThis.__timer_manager;
globalThis.__crossdock_logs = [];
globalThis.console = (() => {
  const log = (...args) => {
    if (__crossdock_logs.length >= 100) return;
    __crossdock_logs.push(args.map(a => typeof a === 'string' ? a : JSON.stringify(a))
      .join(' ').slice(0, 1000));
  };
  return {log, info: log, warn: log, error: log, debug: log};
})();
"""

#: wrappers around one entry point, evaluated after the operator's code so that they see
#: `function f` and top-level `const f = ...` alike. Each message's arguments are a list
#: (transformEvent's [event, metadata], a destination function's [event, settings,
#: metadata]). `__crossdock_call_f` runs one message (a throw is V8's exception);
#: `__crossdock_batch_f` runs a leased batch's messages in one call (a throw is that
#: message's result, located by the first frame of its stack).
_CALLER = """
globalThis.__crossdock_one_%(entry)s = (args) => {
  if (typeof %(entry)s !== 'function') throw new TypeError('%(entry)s is not defined');
  __crossdock_logs = [];
  const value = %(entry)s(...args);
  if (value !== null && typeof value === 'object' && typeof value.then === 'function')
    throw new TypeError('%(entry)s returned a Promise: functions run synchronously ' +
                        '(no await, no fetch)');
  return {returned: value !== undefined, value: value === undefined ? null : value,
          logs: __crossdock_logs};
};
globalThis.__crossdock_call_%(entry)s = (input) =>
  JSON.stringify(__crossdock_one_%(entry)s(JSON.parse(input)));
globalThis.__crossdock_batch_%(entry)s = (input) => JSON.stringify(JSON.parse(input).map(
  (args) => {
    try {
      return {ok: __crossdock_one_%(entry)s(args)};
    } catch (err) {
      const frame = String((err && err.stack) || '').split('\\n')
        .find(line => line.trim().startsWith('at ') && !line.includes('<anonymous>'));
      const at = frame && frame.match(/\\(?([^()\\s]+):(\\d+):\\d+\\)?$/);
      return {error: (at ? at[1] + ':' + at[2] + ': ' : '') + String(err)};
    }
  }));
"""


#: the stack of each thread of the host (mini-racer's, one per isolate): enough for its
#: event loop, which runs no JavaScript (V8 runs on its own threads)
THREAD_STACK = 1 << 20
#: private writable memory the host may have besides its functions' (V8 and Python)
DATA_BASE = 512 << 20
#: and for each function loaded, beside 8x its heap limit (its isolate's structures)
DATA_PER_ISOLATE = 32 << 20


class Host:
    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.sources: dict[str, tuple[str, list[tuple[str, str]], list[str]]] = {}
        self.contexts: dict[str, MiniRacer] = {}

    def load(self, key: str, source: str, libraries: list[tuple[str, str]],
             entries: list[str]) -> list[str]:
        """Compile the function; the entries it defines (an optional one, as a destination
        function's classify, may be missing)."""
        self.sources[key] = (source, libraries, entries)
        self._room()
        old = self.contexts.pop(key, None)
        if old is not None:
            old.close()
        ctx = self.contexts[key] = self._context(key)
        return [entry for entry in entries if _defines(ctx, entry)]

    def _room(self) -> None:
        """Memory V8's heap limit does not see (ArrayBuffers, strings' backing stores, each
        isolate's own structures and thread) still counts against the process: private
        writable memory beyond what its functions are allowed (DATA_BASE, and for each
        function 8x the heap limit and DATA_PER_ISOLATE) fails to allocate, a RangeError in
        the function. The allowance grows with the functions loaded: one limit for the whole
        process stopped the host at its sixth function of 16 MB (and its 28th of 64 MB)."""
        limit = DATA_BASE + len(self.sources) * (self.memory * 8 + DATA_PER_ISOLATE)
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))

    def _context(self, key: str) -> MiniRacer:
        source, libraries, entries = self.sources[key]
        ctx = MiniRacer()
        ctx.set_hard_memory_limit(self.memory)
        ctx.eval(_PRELUDE)
        # Libraries first, in the listed order, in the same global scope: their functions
        # are the function's to call, as in RudderStack's libraries.
        for name, code in libraries:
            _run(ctx, _named(code, name))
        _run(ctx, _named(source, name_of(key)))
        for entry in entries:
            ctx.eval(_CALLER % {"entry": entry})
        return ctx

    def _ctx(self, key: str) -> MiniRacer:
        ctx = self.contexts.get(key) or self._context(key)
        self.contexts[key] = ctx
        return ctx

    def _drop(self, key: str) -> None:
        """After a timeout or out of memory the isolate may be half way through anything:
        the next call gets a fresh one (a few milliseconds)."""
        self.contexts.pop(key).close()

    def call(self, key: str, entry: str, args: list[Any], timeout: float) -> list[Any]:
        """Each message's result. A batch runs in one V8 call first (a quarter of the cost
        of one call per message) within one time limit; when that call runs out of time or
        memory, each message runs again on its own with its own limit, so only the one
        at fault fails."""
        if len(args) > 1:
            ctx = self._ctx(key)
            try:
                out = ctx.call(f"__crossdock_batch_{entry}", orjson.dumps(args).decode(),
                               timeout_sec=timeout, max_memory=self.memory)
                batch: list[Any] = orjson.loads(out)
                return batch
            except (JSTimeoutException, JSOOMException):
                self._drop(key)
        return [self._one(key, entry, pair, timeout) for pair in args]

    def _one(self, key: str, entry: str, pair: Any, timeout: float) -> dict[str, Any]:
        ctx = self._ctx(key)
        try:
            out = ctx.call(f"__crossdock_call_{entry}", orjson.dumps(pair).decode(),
                           timeout_sec=timeout, max_memory=self.memory)
            return {"ok": orjson.loads(out)}
        except (JSTimeoutException, JSOOMException) as exc:
            self._drop(key)
            kind = ("ran longer than its time limit" if isinstance(exc, JSTimeoutException)
                    else "ran out of memory")
            return {"error": f"{kind} ({exc})"}
        except Exception as exc:
            return {"error": _first_lines(str(exc))}


class LoadError(Exception):
    pass


def _run(ctx: MiniRacer, code: str) -> None:
    """Evaluate a library's or the function's code; LoadError with V8's "file:line: error"."""
    try:
        ctx.eval(code, timeout_sec=5)
    except Exception as exc:
        raise LoadError(_first_lines(str(exc))) from exc


def _defines(ctx: MiniRacer, entry: str) -> bool:
    """Whether the code defines `entry` as a function. Reading a global can run code (a
    getter): a throw or a timeout there means no, never an ended host."""
    try:
        return ctx.eval(f"typeof {entry} === 'function'", timeout_sec=5) is True
    except Exception:
        return False


def name_of(key: str) -> str:
    """The function's name (its file) from its key ("tidy.js:<digest>")."""
    return key.rsplit(":", 1)[0]


def _named(code: str, name: str) -> str:
    """The code with a sourceURL, so V8's errors say "tidy.js:4", not "<anonymous>:4"."""
    return f"{code}\n//# sourceURL={name}\n"


def _first_lines(text: str) -> str:
    """V8's "file:line: Error: message", without the source excerpt and the stack."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else text)[:1000]


def main() -> None:
    memory = int(sys.argv[1]) * 1024 * 1024
    host = Host(memory)
    host._room()  # V8's own start, before any function (Host._room says why)
    # Each isolate has a thread of mini-racer's, and a thread's stack counts against that
    # limit too: at the default 8 MiB a host with 16 MB isolates ran out of room at its
    # sixth function ("can't start new thread", the host ended, every load after it failed).
    threading.stack_size(THREAD_STACK)
    init_mini_racer(flags=(f"--max-heap-size={max(16, memory * 2 // (1024 * 1024))}",
                           "--single-threaded"))
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        request = orjson.loads(line)
        answer: dict[str, Any]
        try:
            if request["op"] == "load":
                defined = host.load(request["key"], request["source"],
                                    [tuple(pair) for pair in request["libraries"]],
                                    request["entries"])
                answer = {"ok": True, "defined": defined}
            else:
                answer = {"results": host.call(request["key"], request["entry"],
                                               request["args"], request["timeout"])}
        except LoadError as exc:
            answer = {"error": str(exc)}
        out.write(orjson.dumps(answer) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
