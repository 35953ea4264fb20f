"""Pipedrive with `auth: oauth`: the app's refresh token exchanged at Pipedrive's token endpoint
(the app in a Basic header), requests relative to the api_domain the token answer names, the
contract fake's token endpoint, and the real engine on the fake's clock (one token for many
requests, the renewed refresh token used, a fresh token before the hour ends, a token ended
early replaced once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from pipedrive_helpers import item

from crossdock.delivery import DeliveryReport, deliver_once
from crossdock.destination import PlannedRequest, RefreshToken, basic_auth
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.pipedrive import PipedriveDestination, PipedriveSettings
from crossdock.plugins.pipedrive.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH,
    OAUTH_LIFETIME,
    OAUTH_TOKEN_PATH,
    PipedriveFake,
)
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

OAUTH = {"auth": "oauth", "client_id": DEFAULT_CLIENT_ID,
         "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH}


def plugin(**more: Any) -> PipedriveDestination:
    return PipedriveDestination(PipedriveSettings.model_validate({**OAUTH, **more}),
                                PipedriveDestination.default_mapping())


def test_the_grant_is_the_refresh_token_with_the_app_in_a_basic_header() -> None:
    grant = plugin().token_grant()
    assert isinstance(grant, RefreshToken)
    request = grant.token_request(0.0)
    assert str(request.url) == "https://oauth.pipedrive.com/oauth/token"
    assert request.headers["authorization"] == basic_auth(DEFAULT_CLIENT_ID,
                                                          DEFAULT_CLIENT_SECRET)
    assert {k: v[0] for k, v in parse_qs(request.content.decode()).items()} == {
        "grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH}
    assert grant.api_base_field == "api_domain"
    # The api_token setting has no grant.
    assert PipedriveDestination(PipedriveSettings.model_validate(
        {"api_token": "t", "company_domain": "acme"}),
        PipedriveDestination.default_mapping()).token_grant() is None


def test_requests_are_relative_and_carry_no_api_token() -> None:
    (search,) = [p for p in plugin().build_item(item(1)) if isinstance(p, PlannedRequest)]
    request = search.request
    assert request.url.is_relative_url and request.url.path == "/api/v2/persons/search"
    assert "x-api-token" not in request.headers
    assert DEFAULT_REFRESH not in search.rate_key  # hashed, as an API token is


def form(**more: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH, **more}


def app(client_id: str = DEFAULT_CLIENT_ID, secret: str = DEFAULT_CLIENT_SECRET
        ) -> dict[str, str]:
    return {"Authorization": basic_auth(client_id, secret)}


def test_the_fakes_token_endpoint(server: RunningServer, fake: PipedriveFake,
                                  clock: ManualClock) -> None:
    url = server.url + OAUTH_TOKEN_PATH
    answer = httpx.post(url, data=form(), headers=app())
    assert answer.status_code == 200
    body = answer.json()
    assert (body["token_type"], body["expires_in"], body["api_domain"]) == (
        "Bearer", OAUTH_LIFETIME, server.url)
    # The refresh token is renewed: the old one stops working, the new one works once.
    again = httpx.post(url, data=form(), headers=app())
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    renewed = httpx.post(url, data=form(refresh_token=body["refresh_token"]), headers=app())
    assert renewed.status_code == 200
    wrong_app = httpx.post(url, data=form(), headers=app(secret="nope"))
    assert (wrong_app.status_code, wrong_app.json()["error"]) == (401, "invalid_client")
    in_body = httpx.post(url, data=form(client_id=DEFAULT_CLIENT_ID,
                                        client_secret=DEFAULT_CLIENT_SECRET))
    assert in_body.status_code == 401  # the app goes in the Basic header
    grant = httpx.post(url, data=form(grant_type="password"), headers=app())
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    # The access token opens the API until it expires on the fake's clock.
    headers = {"Authorization": "Bearer " + renewed.json()["access_token"]}
    search = server.url + "/api/v2/persons/search"
    assert httpx.get(search, params={"term": "ab"}, headers=headers).status_code == 200
    clock.advance(OAUTH_LIFETIME)
    assert httpx.get(search, params={"term": "ab"}, headers=headers).status_code == 401
    # Neither the app's secret nor a refresh token is recorded.
    recorded = str([e for e in fake.received if e["path"] == OAUTH_TOKEN_PATH])
    assert DEFAULT_REFRESH not in recorded and DEFAULT_CLIENT_SECRET not in recorded


async def deliver(tmp_path: Path, clock: ManualClock, url: str, payloads: list[Any],
                  count: list[int]) -> DeliveryReport:
    outbox = SQLiteOutbox(tmp_path / "outbox.db")
    rows = []
    for routed in payloads:
        count[0] += 1
        rows.append(NewRow("pipedrive", f"m{count[0]}", routed, routed.get("userId")))
    outbox.enqueue(rows, now=clock())
    loaded = parse_config({"destinations": {"pipedrive": {
        "plugin": "pipedrive", "settings": {**OAUTH, "token_url": url + OAUTH_TOKEN_PATH},
        "delivery": {"allow_private_network": True, "backoff_base": 0.01,
                     "backoff_max": 0.02}}}}, base_dir=tmp_path, env={})
    return await deliver_once(loaded, outbox, clock=clock)


async def test_oauth_through_the_engine(tmp_path: Path, server: RunningServer,
                                        fake: PipedriveFake, clock: ManualClock) -> None:
    count = [0]
    report = await deliver(tmp_path, clock, server.url,
                           [item(n).payload for n in range(1, 4)], count)
    assert report.delivered == 3, report
    assert fake.token_requests == 1
    assert sorted(p["emails"][0]["value"] for p in fake.persons.values()) == [
        "ada1@example.com", "ada2@example.com", "ada3@example.com"]
    api = [e for e in fake.received if e["path"] != OAUTH_TOKEN_PATH]
    assert all(e["headers"]["authorization"] == "Bearer pipedrive-access-1"
               and "x-api-token" not in e["headers"] for e in api)
    # In the token's last minute a new one is fetched, with the renewed refresh token (the
    # configured one no longer works).
    clock.advance(OAUTH_LIFETIME - 30)
    assert (await deliver(tmp_path, clock, server.url, [item(4).payload], count)
            ).delivered == 1
    assert fake.token_requests == 2
    # A token ended early: replaced once after the 401.
    fake.expire_tokens()
    assert (await deliver(tmp_path, clock, server.url, [item(5).payload], count)
            ).delivered == 1
    assert fake.token_requests == 3
    tokens = [e["status"] for e in fake.received if e["path"] == OAUTH_TOKEN_PATH]
    assert tokens == [200, 200, 200]
