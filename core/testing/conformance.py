"""The standard conformance suite every destination runs, as the Meltano SDK's target tests:
subclass one class in your tests, say how to build your destination and its fake, and pytest
collects the checks.

    from crossdock.testing.conformance import DestinationConformance

    class TestAcmeConformance(DestinationConformance):
        destination = AcmeDestination
        payloads = [routed_payload(1, event="Order Completed"), routed_payload(2, ...)]
        rejected_payload = routed_payload(3, userId=None, anonymousId=None)

        def fake_app(self) -> web.Application:
            return make_app(AcmeFake())

        def settings(self, url: str) -> dict[str, Any]:
            return {"base_url": url, "api_key": "test-key"}

What it checks, for every destination alike:

- the manifest is declared and complete (its docs page exists), the settings and options
  models refuse unknown keys, and an unknown setting is named with the closest known one;
- `build_requests` is deterministic (for a destination with a function, `script()`, of what
  the function returns for the payloads, as the engine runs it): the same items at the same
  attempt time give the same requests, bytes and rate keys;
- each item is planned exactly once (in one send, or rejected), no send carries more than the
  manifest's maximum, and the fake delivers every payload with exactly one outcome per item
  (the follow-ups of a flow, `FollowUp`, are sent as the engine sends them: the last answer
  settles the items);
- replies are classified as docs/delivery.md says: 429 (honouring Retry-After) and 5xx are
  retried, 400 is a dead letter, and a body the plugin cannot read (an HTML page, bytes that
  are no UTF-8, JSON cut short) never raises and never dead-letters a 2xx or a 5xx; a timeout
  and a dropped connection (the fake's faults) are retried by the engine;
- secrets (every SecretStr of the settings) never show in rate keys, reasons, logs, the
  outbox or cassettes (request bodies included);
- a manifest with `auth="oauth2"` comes with a grant (`token_grant()`) whose secrets are
  the settings' own, and a grant comes only with `oauth2` as the manifest's `auth` or among
  its `other_auth` (settings that choose it);
- the plugin's modules import nothing of Crossdock but the public plugin API.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiohttp import web
from pydantic import BaseModel

from crossdock.destination import (
    DELIVERED,
    Destination,
    Failed,
    FollowUp,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    PlannedSend,
    Rejected,
    Retry,
)
from crossdock.redact import secret_values
from crossdock.testing.cassettes import plugin_vcr
from crossdock.testing.exchange import Exchange, SendExchange, build_planned, exchange
from crossdock.testing.fakeserver import RunningServer, serve
from crossdock.testing.payloads import outbox_item

#: the modules of Crossdock a plugin may import (its fake and tests: crossdock.testing too)
PUBLIC_PLUGIN_API = ("crossdock.destination", "crossdock.hookspecs", "crossdock.dates",
                     "crossdock.phones", "crossdock.exports",
                     "crossdock.testing")
#: the attempt time of the items whose requests are compared
ATTEMPT_TIME = 1_714_651_200.0
#: bodies no destination documents, which a plugin must read without raising
GARBAGE_BODIES = (b"<html><body>502 Bad Gateway</body></html>", b"\xff\xfe\x00garbage",
                  b'{"status": "ok", "errors": [', b"")


class DestinationConformance:
    """The conformance suite; subclass it as `Test<Name>Conformance` (see the module)."""

    #: the destination type under test
    destination: ClassVar[type[Destination]]
    #: routed payloads (crossdock.testing.payloads.routed_payload) the destination takes and
    #: its fake accepts: each is delivered
    payloads: ClassVar[Sequence[dict[str, Any]]]
    #: a routed payload the destination must reject (ItemRejected), if it rejects any
    rejected_payload: ClassVar[dict[str, Any] | None] = None

    def fake_app(self) -> web.Application:
        """The destination's contract fake, built with crossdock.testing.fakescript.fake_app
        (the suite steers it through its control routes) and answering `payloads` with
        success."""
        raise NotImplementedError

    def settings(self, url: str) -> dict[str, Any]:
        """Valid settings (as an operator writes them) for the destination at base `url`,
        with at least one secret."""
        raise NotImplementedError

    def mapping(self) -> dict[str, Any]:
        """The operator's `mapping:` for the destination under test (default: none)."""
        return {}

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def served_fake(self) -> Iterator[RunningServer]:
        with serve(self.fake_app()) as server:
            yield server

    def plugin(self, url: str) -> Destination:
        """The destination for settings at `url`, with the shipped mapping and `mapping()`."""
        from crossdock.config import deep_merge

        settings, problems = self.destination.parse_settings(self.settings(url))
        assert settings is not None, problems
        mapping = deep_merge(self.destination.default_mapping(), self.mapping())
        return self.destination.configured(settings, mapping)

    def items(self, attempted_at: float = ATTEMPT_TIME) -> list[OutboxItem]:
        return [outbox_item(payload, number, created_at=attempted_at - 60,
                            attempted_at=attempted_at)
                for number, payload in enumerate(self.payloads, start=1)]

    def secrets(self, url: str) -> list[str]:
        settings, _ = self.destination.parse_settings(self.settings(url))
        assert isinstance(settings, BaseModel)
        return secret_values(settings)

    # -- the manifest and the settings -----------------------------------------------------

    def test_the_manifest_is_declared_and_its_docs_exist(self,
                                                         request: pytest.FixtureRequest) -> None:
        cls = self.destination
        manifest = next((k.__dict__["manifest"] for k in cls.__mro__
                         if isinstance(k.__dict__.get("manifest"), Manifest)), None)
        assert manifest is not None, f"{cls.__name__} declares no manifest = Manifest(...)"
        assert cls.describe() == manifest
        docs = manifest.docs_url
        assert docs, "the manifest names no docs page (docs_url)"
        if not docs.startswith(("https://", "http://")):
            assert (Path(request.config.rootpath) / docs).is_file(), (
                f"docs_url {docs!r} is no file under {request.config.rootpath}")
        kinds = {payload.get("type") for payload in self.payloads}
        assert kinds <= manifest.message_types, f"payloads of types {kinds} it does not take"

    def test_settings_refuse_unknown_keys_naming_the_closest(self) -> None:
        valid = self.settings("http://127.0.0.1:9")
        for model in (self.destination.settings_model, self.destination.options_model):
            if model is not None:
                assert model.model_config.get("extra") == "forbid", (
                    f"{model.__name__} must refuse unknown keys: extra='forbid'")
        key = max(valid, key=len)
        typo = key[:-1] + ("x" if key[-1] != "x" else "y")
        settings, problems = self.destination.parse_settings({**valid, typo: valid[key]})
        assert settings is None
        assert f"settings.{typo}: unknown setting (did you mean {key!r}?)" in problems

    def test_an_oauth2_destination_declares_its_grant(self) -> None:
        url = "http://127.0.0.1:9"
        grant = self.plugin(url).token_grant()
        manifest = self.destination.describe()
        # auth='oauth2' always has a grant; another default may let the settings choose
        # oauth2 (other_auth), and then only such settings have one.
        assert (grant is not None) == (manifest.auth == "oauth2") or (
            grant is not None and "oauth2" in manifest.other_auth), (
            "a manifest with auth='oauth2' (or 'oauth2' in other_auth, for the settings that "
            "choose it) and token_grant() go together: the engine fetches tokens only for a "
            "declared grant")
        if grant is not None:
            # Its secrets are the settings' own, so every check below keeps them hidden too.
            missing = set(grant.secrets()) - set(self.secrets(url))
            assert not missing, "the grant holds a secret that is no SecretStr of the settings"

    # -- planning --------------------------------------------------------------------------

    def test_requests_are_deterministic(self) -> None:
        first = build_planned(self.plugin("http://127.0.0.1:9"), self.items())
        again = build_planned(self.plugin("http://127.0.0.1:9"), self.items())
        assert [_shape(p) for p in first] == [_shape(p) for p in again]

    def test_each_item_is_planned_exactly_once(self) -> None:
        items = self.items()
        if self.rejected_payload is not None:
            items.append(outbox_item(self.rejected_payload, len(items) + 1,
                                     attempted_at=ATTEMPT_TIME))
        planned = build_planned(self.plugin("http://127.0.0.1:9"), items)
        carried: list[int] = []
        most = self.destination.describe().largest_batch
        for entry in planned:
            if isinstance(entry, PlannedRequest | PlannedSend):
                assert 0 < len(entry.items) <= most, f"a send carries {len(entry.items)} items"
                carried += [item.id for item in entry.items]
            elif isinstance(entry, Rejected):
                carried.append(entry.item.id)
        assert sorted(carried) == [item.id for item in items]
        if self.rejected_payload is not None:
            assert any(isinstance(e, Rejected) and e.item.id == len(items) for e in planned)

    def test_the_fake_delivers_each_item_with_one_outcome(self, served_fake: RunningServer) -> None:
        plugin = self.plugin(served_fake.url)
        outcomes: list[Outcome] = []
        for entry in exchange(plugin, self.items(), now=time.time()):
            if isinstance(entry, Exchange) and isinstance(entry.outcome, FollowUp):
                continue  # a step of a flow: its last request's answer settles the items
            if isinstance(entry, Exchange | SendExchange):
                judged = entry.outcome
                assert not isinstance(judged, FollowUp)
                got = list(judged) if isinstance(judged, Sequence) else [judged] * len(
                    entry.planned.items)
                assert len(got) == len(entry.planned.items)
                outcomes += got
        assert outcomes == [DELIVERED] * len(self.payloads)

    # -- classifying -----------------------------------------------------------------------

    def _requests(self) -> list[PlannedRequest]:
        planned = build_planned(self.plugin("http://127.0.0.1:9"), self.items())
        requests = [p for p in planned if isinstance(p, PlannedRequest)]
        if not requests:
            pytest.skip("the destination plans no HTTP requests")
        return requests

    def _answer(self, planned: PlannedRequest, status: int, content: bytes = b"",
                headers: dict[str, str] | None = None) -> list[Outcome] | FollowUp:
        response = httpx.Response(status, content=content, headers=headers,
                                  request=planned.request)
        judged = self.plugin("http://127.0.0.1:9").classify(planned, response)
        if isinstance(judged, FollowUp):
            return judged
        got = list(judged) if isinstance(judged, Sequence) else [judged] * len(planned.items)
        assert len(got) == len(planned.items), f"HTTP {status}: {len(got)} outcomes"
        return got

    def _judge(self, planned: PlannedRequest, status: int, content: bytes = b"",
               headers: dict[str, str] | None = None) -> list[Outcome]:
        """The outcomes of an answer; none when it asks for a flow's next step (a 404
        answering a lookup: create), which settles nothing yet."""
        answer = self._answer(planned, status, content, headers)
        return [] if isinstance(answer, FollowUp) else answer

    def test_throttling_and_server_errors_are_retried(self) -> None:
        for planned in self._requests():
            got = self._judge(planned, 429, b'{"error": "slow down"}', {"Retry-After": "7"})
            assert got and all(isinstance(o, Retry) and o.after == 7.0 for o in got), got
            for status in (500, 502, 503, 504):
                got = self._judge(planned, status, b"upstream trouble")
                assert got and all(isinstance(o, Retry) for o in got), (status, got)

    def test_a_bad_request_is_a_dead_letter(self) -> None:
        for planned in self._requests():
            got = self._judge(planned, 400, b"bad request")
            assert got and all(isinstance(o, Failed) for o in got), got

    def test_an_unreadable_body_never_raises_nor_dead_letters_a_2xx_or_5xx(self) -> None:
        for planned in self._requests():
            for body in GARBAGE_BODIES:
                for status in (200, 503):
                    got = self._judge(planned, status, body)
                    assert not any(isinstance(o, Failed) for o in got), (status, body, got)
                    if status == 503:
                        assert got and all(isinstance(o, Retry) for o in got), (body, got)

    def test_a_timeout_and_a_dropped_connection_are_retried(self, served_fake: RunningServer,
                                                            tmp_path: Path) -> None:
        self._requests()
        outages: list[tuple[str, dict[str, Any], str]] = [
            ("hang", {"kind": "hang", "seconds": 30}, "timeout after 0.3s"),
            ("reset", {"kind": "reset"}, "connection error sending")]
        for kind, outage, said in outages:
            httpx.post(f"{served_fake.url}/_fake/script",
                       json={"outage": outage}).raise_for_status()
            report = asyncio.run(self._deliver(tmp_path / kind, served_fake.url, timeout=0.3))
            assert report.retried == len(self.payloads), (outage, report)
            assert said in str(report), (outage, report)

    # -- secrets ---------------------------------------------------------------------------

    def test_secrets_never_show_in_rate_keys_or_reasons(self) -> None:
        url = "http://127.0.0.1:9"
        secrets = self.secrets(url)
        items = self.items()
        if self.rejected_payload is not None:
            items.append(outbox_item(self.rejected_payload, len(items) + 1))
        shown: list[str] = []
        for entry in build_planned(self.plugin(url), items):
            if isinstance(entry, PlannedRequest | PlannedSend):
                shown.append(entry.rate_key)
            else:
                shown.append(entry.reason)
            if isinstance(entry, PlannedRequest):
                for status in (400, 401, 403, 404, 429, 500):
                    answer = self._answer(entry, status, b"no")
                    if isinstance(answer, FollowUp):
                        shown.append(answer.rate_key or "")
                        continue
                    shown += [o.reason for o in answer if isinstance(o, Retry | Failed)]
        _assert_hidden(secrets, "\n".join(shown), "rate keys and reasons")

    def test_secrets_never_show_in_logs_or_the_outbox(self, served_fake: RunningServer,
                                                      tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
        secrets = self.secrets(served_fake.url)
        httpx.post(f"{served_fake.url}/_fake/script", json={"replies": [500]}).raise_for_status()
        with caplog.at_level(logging.DEBUG):
            first = asyncio.run(self._deliver(tmp_path, served_fake.url))
            second = asyncio.run(self._deliver(tmp_path, served_fake.url, later=1.0))
        assert second.delivered + first.delivered == len(self.payloads), (first, second)
        _assert_hidden(secrets, caplog.text + str(first) + str(second), "the logs")

    def test_secrets_never_show_in_cassettes(self, served_fake: RunningServer,
                                             tmp_path: Path) -> None:
        secrets = self.secrets(served_fake.url)
        recorder = plugin_vcr(tmp_path, secrets=secrets, record_mode="all")
        with recorder.use_cassette("conformance.yaml"):
            exchange(self.plugin(served_fake.url), self.items(), now=time.time())
        cassette = tmp_path / "conformance.yaml"
        if cassette.exists():
            _assert_hidden(secrets, cassette.read_text(errors="replace"), "the cassette")

    # -- imports ---------------------------------------------------------------------------

    def test_the_plugin_imports_only_the_public_api(self) -> None:
        wrong = imports_beyond_the_public_api(self.destination)
        assert not wrong, ("a plugin imports only " + ", ".join(PUBLIC_PLUGIN_API)
                           + " and itself: " + "; ".join(wrong))

    # -- the engine ------------------------------------------------------------------------

    async def _deliver(self, folder: Path, url: str, *, timeout: float = 10.0,
                       later: float = 0.0) -> Any:
        """Put `payloads` into a SQLite outbox in `folder` (once) and run one delivery pass
        of the real engine for settings at `url`."""
        from crossdock.delivery import deliver_once
        from crossdock.loader import parse_config
        from crossdock.outbox.base import NewRow
        from crossdock.outbox.sqlite import SQLiteOutbox

        name = self.destination.plugin_name
        # The fakes listen on 127.0.0.1, which the egress guard refuses unless opted in.
        loaded = parse_config({"destinations": {"conformance": {
            "plugin": name, "settings": self.settings(url), "mapping": self.mapping(),
            "delivery": {"timeout": timeout, "backoff_base": 0.01, "backoff_max": 0.1,
                         "allow_private_network": True}}}},
            base_dir=folder, env={}, types={name: self.destination})
        folder.mkdir(parents=True, exist_ok=True)
        box = SQLiteOutbox(folder / "conformance.db")
        now = time.time() + later

        async def no_wait(seconds: float) -> None:  # rate limits are the engine's own test
            await asyncio.sleep(0)

        try:
            if not box.counts():
                box.enqueue([NewRow("conformance", str(p["messageId"]), p)
                             for p in self.payloads], now=now)
            return await deliver_once(loaded, box, clock=lambda: now, sleep=no_wait)
        finally:
            box.close()


def _shape(entry: Planned) -> Any:
    """What a planned entry sends, comparable."""
    if isinstance(entry, PlannedRequest):
        request = entry.request
        return ("http", request.method, str(request.url), request.headers.multi_items(),
                request.content, [i.id for i in entry.items], entry.rate_key)
    if isinstance(entry, PlannedSend):
        return ("send", entry.send, [i.id for i in entry.items], entry.rate_key)
    return entry


def _assert_hidden(secrets: list[str], text: str, where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret of the settings shows in {where}"


def _imported(source: Path, package: str) -> Iterator[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the plugin's own package
                yield package
            elif node.module:
                yield node.module


def imports_beyond_the_public_api(destination: type[Destination[Any]]) -> list[str]:
    """"file.py: module" for each import of Crossdock in the destination's package that is
    neither the public plugin API nor the package itself (for destinations that cannot run
    the whole suite, such as the file exports, whose far side is no HTTP API)."""
    module = sys.modules[destination.__module__]
    package = (module.__spec__.parent if module.__spec__ else None) or ""
    folder = Path(str(module.__file__)).parent
    wrong = []
    for source in sorted(folder.rglob("*.py")):
        for name in _imported(source, package):
            if (name == "crossdock" or name.startswith("crossdock.")) and not _allowed(
                    name, package):
                wrong.append(f"{source.name}: {name}")
    return wrong


def _allowed(name: str, package: str) -> bool:
    return any(name == ok or name.startswith(ok + ".")
               for ok in (*PUBLIC_PLUGIN_API, package))
