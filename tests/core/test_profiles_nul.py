"""NUL (\\u0000) where the profile store keeps text of its own: an attribute name, an email
(an attribute and an identity) and a consent purpose. PostgreSQL text cannot hold NUL, and such
a message used to fail its whole accept there (psycopg DataError: a 500 from the collector,
the batch's other messages lost). On both engines now: the attribute (or purpose) alone is
rejected (shown with the profile, counted in /metrics), the rest of the message is kept; the
user API refuses an email with NUL outright, as it refuses the ids (422)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from route_helpers import passthrough_route

from crossdock.collector import make_app
from crossdock.loader import parse_config
from crossdock.outbox import Outbox, open_outbox
from crossdock.pipeline import Pipeline
from crossdock.profiles import ProfileStore, make_profile_hook

NUL = "\u0000"
WRITE = {"Authorization": "Basic " + base64.b64encode(b"wk:").decode()}
SHOP = {"Authorization": "Bearer sk"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty outbox: a SQLite file, or conftest's fresh PostgreSQL schema (`pg_url`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nul.db'}"
    return str(request.getfixturevalue("pg_url"))


class Collector:
    def __init__(self, outbox: Outbox, store: ProfileStore, client: httpx.AsyncClient) -> None:
        self.outbox = outbox
        self.store = store
        self.client = client

    def show(self, ref: str) -> dict[str, Any]:
        with self.outbox.transaction() as db:  # type: ignore[attr-defined]
            profile = self.store.show(db, ref)
        assert profile is not None
        return profile


@pytest.fixture
async def collector(tmp_path: Path, outbox_url: str) -> Any:
    loaded = parse_config(
        {"outbox": {"url": outbox_url},
         "collector": {"write_keys": ["wk"], "accounts": {"shop": {"keys": ["sk"]}}}},
        base_dir=tmp_path, env={}, types={},
    )
    outbox = open_outbox(outbox_url)
    store = make_profile_hook(loaded, outbox)
    assert store is not None
    app = make_app(loaded, Pipeline(loaded, outbox, store, router=passthrough_route))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
            yield Collector(outbox, store, client)
    finally:
        app.state.collector.close()
        outbox.close()


def rejections(profile: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((r["attribute"], r["rule"]) for r in profile["rejections"])


def queued(r: httpx.Response) -> None:
    assert r.status_code == 200, r.text
    assert r.json()["response"]["accepted"] == 1, r.text


async def test_an_attribute_name_with_nul_is_rejected_and_the_rest_kept(
    collector: Collector,
) -> None:
    queued(await collector.client.post("/v1/identify", headers=WRITE, json={
        "userId": "u1", "traits": {f"ti{NUL}er": "gold", "plan": "pro", "firstName": "Ann"}}))
    queued(await collector.client.post("/v1/track", headers=WRITE, json={
        "userId": "u1", "event": "E", "context": {"traits": {f"k{NUL}": 1}}}))
    queued(await collector.client.post("/v1/accounts/shop/users", headers=SHOP, json={
        "userId": "u1", "attributes": {f"{NUL}": True, "vip": True}}))
    profile = collector.show("u1")
    assert profile["attributes"]["custom"] == {
        "plan": {"type": "string", "value": "pro"}, "vip": {"type": "boolean", "value": True}}
    assert profile["attributes"]["system"]["firstName"]["value"] == "Ann"
    assert rejections(profile) == [("\\x00", "name"), ("k\\x00", "name"),
                                   ("ti\\x00er", "name")]
    assert all("must not contain NUL" in r["detail"] for r in profile["rejections"])
    metrics = (await collector.client.get("/metrics")).text
    assert 'crossdock_attribute_problems_total{rule="name"} 3' in metrics


async def test_an_email_with_nul_is_neither_linked_nor_kept(collector: Collector) -> None:
    queued(await collector.client.post("/v1/identify", headers=WRITE, json={
        "userId": "u2", "traits": {"email": "ann@example.com"}}))
    queued(await collector.client.post("/v1/identify", headers=WRITE, json={
        "userId": "u2", "traits": {"email": f"ann{NUL}@example.com", "plan": "pro"}}))
    queued(await collector.client.post("/v1/page", headers=WRITE, json={
        "anonymousId": "a3", "context": {"traits": {"email": f"{NUL}@example.com"}}}))
    profile = collector.show("u2")
    assert profile["identities"]["email"] == ["ann@example.com"]
    assert profile["attributes"]["system"]["email"]["value"] == "ann@example.com"
    assert profile["attributes"]["custom"]["plan"]["value"] == "pro"
    assert rejections(profile) == [("email", "identity")]
    anonymous = collector.show("a3")
    assert "email" not in anonymous["identities"]
    assert rejections(anonymous) == [("email", "identity")]
    # The user API refuses it before anything is stored, naming the field.
    r = await collector.client.post("/v1/accounts/shop/users", headers=SHOP, json={
        "userId": "u2", "email": f"x{NUL}@example.com"})
    assert r.status_code == 422, r.text
    assert r.json()["response"]["message"] == (
        "email: must not contain the NUL character (\\u0000)")


async def test_the_user_api_refuses_ids_with_nul_by_field(collector: Collector) -> None:
    for path, body, field in [
        ("users", {"userId": f"a{NUL}"}, "userId"),
        ("users", {"anonymousId": f"{NUL}"}, "anonymousId"),
        ("events", {"userId": "u", "name": "E", "messageId": f"m{NUL}"}, "messageId"),
        ("events", {"userId": "u", "name": "E", "sessionId": f"s{NUL}"}, "sessionId"),
    ]:
        r = await collector.client.post(f"/v1/accounts/shop/{path}", headers=SHOP, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["response"]["message"] == (
            f"{field}: must not contain the NUL character (\\u0000)")


async def test_a_consent_purpose_with_nul_is_ignored_and_the_others_kept(
    collector: Collector,
) -> None:
    queued(await collector.client.post("/v1/identify", headers=WRITE, json={
        "userId": "c1", "context": {"consent": {"categoryPreferences": {
            f"ads{NUL}": True, "marketing": True}}}}))
    queued(await collector.client.post("/v1/track", headers=WRITE, json={
        "userId": "c1", "event": "E", "context": {"consent": [f"{NUL}"]}}))
    profile = collector.show("c1")
    # Only what was said; the channels' defaults are shown as defaults.
    assert {k for k, v in profile["consent"].items() if not v["default"]} == {"marketing"}
    assert rejections(profile) == [("\\x00", "consent"), ("ads\\x00", "consent")]
