"""The console's Profiles, Audiences and Data dictionary pages over HTTP, on a real SQLite
outbox: lookups by each kind of id, erasure (confirmation, CSRF, admin only), audience
preview and sync now, the dictionary with its sparklines and rejections; bad input answered
with a message naming the field, never a 500; no destination secret on any page."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from console_helpers import (
    ADMIN_PASSWORD,
    HEADER_SECRET,
    WEBHOOK_SECRET,
    console_config,
    console_server,
    csrf_of,
    logged_in,
)

from crossdock.config import LoadedConfig
from crossdock.console.pages.dictionary import SPARK_HEIGHT, sparkline
from crossdock.pipeline import build_pipeline

AUDIENCES = {
    # synced by hand only: the preview has someone to show
    "big_spenders": {"condition": "lifetime_value > 500", "destinations": ["hook"],
                     "sync_on_change": False},
    "pro": {"condition": 'plan == "pro"', "destinations": ["hook"]},
}


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    found = console_config(tmp_path, audiences=AUDIENCES)
    pipeline = build_pipeline(found)
    try:
        result = pipeline.accept([
            {"type": "page", "anonymousId": "laptop-1", "name": "Home", "sessionId": "s1"},
            {"type": "identify", "anonymousId": "laptop-1", "userId": "ann",
             "traits": {"email": "Ann@Example.com", "plan": "pro", "lifetime_value": 900,
                        "we_segment": "vip"}},
            {"type": "identify", "userId": "bob", "traits": {"plan": 3, "lifetime_value": 10}},
            {"type": "track", "userId": "bob", "event": "Order Completed",
             "properties": {"total": 12.5, "currency": "EUR"}},
        ])
        assert not result.errors, result.errors
    finally:
        pipeline.close()
    return found


@pytest.fixture
def url(loaded: LoadedConfig) -> Iterator[str]:
    with console_server(loaded) as found:
        yield found


def no_secrets(html: str) -> str:
    assert WEBHOOK_SECRET not in html and HEADER_SECRET not in html
    return html


def profile_id(html: str) -> str:
    found = re.search(r'data-profile="(p_[0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


# -- Profiles ---------------------------------------------------------------------------


def test_pages_need_a_session(url: str) -> None:
    for path in ("/console/profiles?ref=ann", "/console/audiences", "/console/dictionary",
                 "/console/audiences/pro"):
        answer = httpx.get(url + path, follow_redirects=False)
        assert answer.status_code == 303 and "/console/login" in answer.headers["location"]
    answer = httpx.post(url + "/console/profiles/erase", data={"profile": "p_1"},
                        follow_redirects=False)
    assert answer.status_code == 303 and "/console/login" in answer.headers["location"]


def test_look_up_by_user_id_anonymous_id_and_email(viewer: httpx.Client) -> None:
    page = viewer.get("/console/profiles")
    assert page.status_code == 200 and 'name="ref"' in page.text
    by_user = viewer.get("/console/profiles", params={"ref": "ann", "by": "userId"})
    assert by_user.status_code == 200
    html = no_secrets(by_user.text)
    ann = profile_id(html)
    # identities, attributes with types, consent, sessions, audiences, problems
    assert "known · user id ann" in html
    assert "laptop-1" in html and "ann@example.com" in html
    assert re.search(r"<td>lifetime_value</td><td>custom</td><td>number</td>", html)
    assert re.search(r"<td>email</td><td>system</td><td>string</td>", html)
    assert "(default: never said)" in html
    assert "<td>s1</td>" in html
    assert '/console/audiences/pro">pro</a>' in html
    assert "names starting with &#39;we_&#39; are reserved" in html
    assert "Erase this profile" not in html  # read-only: no erase link
    for ref, by in (("laptop-1", "anonymousId"), ("  ANN@example.com ", "email"),
                    ("ann", ""), (ann, "profileId")):
        found = viewer.get("/console/profiles", params={"ref": ref, "by": by})
        assert found.status_code == 200, (ref, by)
        assert profile_id(found.text) == ann
    # bob's anonymousId is not "ann": looked up as that kind only, nobody.
    assert viewer.get("/console/profiles",
                      params={"ref": "ann", "by": "anonymousId"}).status_code == 404


def test_unknown_people_and_bad_lookups_get_a_message(viewer: httpx.Client) -> None:
    nobody = viewer.get("/console/profiles", params={"ref": "nobody@example.com",
                                                     "by": "email"})
    assert nobody.status_code == 404
    assert "No profile for &#39;nobody@example.com&#39; (looked up as email)" in nobody.text
    assert 'name="ref"' in nobody.text  # the form is still there to try again
    bad_kind = viewer.get("/console/profiles", params={"ref": "x", "by": "phone"})
    assert bad_kind.status_code == 400
    assert "by: one of profileId, userId, anonymousId, email, got &#39;phone&#39;" in bad_kind.text
    too_long = viewer.get("/console/profiles", params={"ref": "x" * 301})
    assert too_long.status_code == 400 and "ref: at most 300 characters" in too_long.text
    confirm = viewer.get("/console/profiles/erase", params={"profile": "p_nobody"})
    assert confirm.status_code == 404 and "no profile &#39;p_nobody&#39;" in confirm.text


def test_erase_asks_for_confirmation_then_erases(admin: httpx.Client, viewer: httpx.Client,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "crossdock.console.actions")
    page = no_secrets(admin.get("/console/profiles", params={"ref": "ann"}).text)
    ann = profile_id(page)
    assert f"/console/profiles/erase?profile={ann}" in page
    confirm = admin.get("/console/profiles/erase", params={"profile": ann})
    assert confirm.status_code == 200 and "It cannot be undone" in confirm.text
    token = csrf_of(confirm.text)

    # no CSRF token: refused, nothing erased
    refused = admin.post("/console/profiles/erase", data={"profile": ann, "confirm": "erase"})
    assert refused.status_code == 403
    # read-only, with its own valid token: refused
    viewer_token = csrf_of(viewer.get("/console/profiles").text)
    refused = viewer.post("/console/profiles/erase",
                          data={"csrf": viewer_token, "profile": ann, "confirm": "erase"})
    assert refused.status_code == 403 and "vic is read-only" in refused.text
    # not confirmed: refused with the rule
    unconfirmed = admin.post("/console/profiles/erase",
                             data={"csrf": token, "profile": ann, "confirm": "yes"})
    assert unconfirmed.status_code == 400
    assert "confirm: type &#39;erase&#39; to erase profile" in unconfirmed.text
    assert admin.get("/console/profiles", params={"ref": "ann"}).status_code == 200

    done = admin.post("/console/profiles/erase",
                      data={"csrf": token, "profile": ann, "confirm": "erase"},
                      follow_redirects=False)
    assert done.status_code == 303
    after = admin.get(done.headers["location"])
    assert f"Erased profile {ann}; took them out of 1 audiences" in after.text
    for ref in ("ann", "laptop-1", "ann@example.com"):
        assert admin.get("/console/profiles", params={"ref": ref}).status_code == 404
    again = admin.post("/console/profiles/erase",
                       data={"csrf": token, "profile": ann, "confirm": "erase"})
    assert again.status_code == 404 and "erased already?" in again.text
    logged = [r.getMessage() for r in caplog.records if "profiles/erase" in r.getMessage()]
    assert any("vic (read-only)" in m and "-> 403; refused: read-only" in m for m in logged)
    assert any(m.startswith("console: ada (admin) POST /console/profiles/erase -> 303; "
                            f"erased profile {ann}") for m in logged), logged


# -- Audiences --------------------------------------------------------------------------


def test_audiences_list_one_and_unknown(viewer: httpx.Client) -> None:
    page = no_secrets(viewer.get("/console/audiences").text)
    rows = re.findall(r'/console/audiences/(\w+)">\w+</a></td>\s*<td><code>([^<]*)</code>', page)
    assert rows == [("big_spenders", "lifetime_value &gt; 500"),
                    ("pro", "plan == &#34;pro&#34;")]
    one = viewer.get("/console/audiences/pro")
    assert one.status_code == 200
    assert '<b id="members">1</b>' in one.text
    assert "Sync now" not in one.text  # read-only
    unknown = viewer.get("/console/audiences/nope")
    assert unknown.status_code == 404
    assert "audience: unknown audience &#39;nope&#39; (known: big_spenders, pro)" in unknown.text
    assert viewer.get("/console/audiences/nope/preview").status_code == 404


def test_preview_then_sync_now(admin: httpx.Client, viewer: httpx.Client) -> None:
    page = admin.get("/console/audiences/big_spenders")
    assert '<b id="members">0</b>' in page.text and "Sync now" in page.text
    partial = admin.get("/console/audiences/big_spenders/preview",
                        headers={"HX-Request": "true"})
    assert partial.status_code == 200 and not partial.text.lstrip().startswith("<!doctype")
    assert "<b>1</b> would enter and <b>0</b> would leave" in partial.text
    assert "<td>ann</td><td>ann@example.com</td>" in partial.text
    full = admin.get("/console/audiences/big_spenders/preview")
    assert full.text.startswith("<!doctype html>") and "would enter" in full.text
    # previewing changed nothing
    assert '<b id="members">0</b>' in admin.get("/console/audiences/big_spenders").text

    token = csrf_of(page.text)
    viewer_token = csrf_of(viewer.get("/console/audiences").text)
    assert viewer.post("/console/audiences/big_spenders/sync",
                       data={"csrf": viewer_token}).status_code == 403
    assert admin.post("/console/audiences/big_spenders/sync").status_code == 403
    assert admin.post("/console/audiences/nope/sync", data={"csrf": token}).status_code == 404
    done = admin.post("/console/audiences/big_spenders/sync", data={"csrf": token},
                      follow_redirects=False)
    assert done.status_code == 303
    after = admin.get(done.headers["location"])
    assert "Synced now: 1 entered, 0 left." in after.text
    assert '<b id="members">1</b>' in after.text
    assert "ago" in after.text.split("last sync", 1)[1][:200]
    assert "<b>0</b> would enter and <b>0</b> would leave" in admin.get(
        "/console/audiences/big_spenders/preview", headers={"HX-Request": "true"}).text


# -- Data dictionary ----------------------------------------------------------------------


def test_dictionary_lists_what_was_seen_and_what_was_rejected(viewer: httpx.Client) -> None:
    page = viewer.get("/console/dictionary")
    assert page.status_code == 200
    html = no_secrets(page.text)
    entries = html.split('id="entries"', 1)[1]
    assert "<td>event</td><td>Order Completed</td>" in entries
    assert "<td>event</td><td>Home</td>" in entries
    assert "<td>property</td><td>total</td>" in entries
    # plan: defined a string by ann's "pro"; bob's number was refused
    plan = entries.split("<td>trait</td><td>plan</td>", 1)[1].split("</tr>", 1)[0]
    assert '<span class="tag">string 1</span>' in plan
    assert '<span class="tag open">number 1</span>' in plan
    assert "<td>string</td>" in plan and "wrong type 1" in plan
    assert entries.count('<svg class="spark"') == entries.count("<tr>") - 1
    by_rule = html.split('id="by-rule"', 1)[1].split("</div>\n</div>", 1)[0]
    assert "reserved name</small><b>1</b>" in by_rule and "wrong type</small><b>1</b>" in by_rule
    assert "<td>we_segment</td><td>reserved name</td>" in html
    events = viewer.get("/console/dictionary", params={"kind": "event", "days": "3"}).text
    assert "<td>property</td>" not in events and "<td>event</td><td>Home</td>" in events
    assert events.count("3 days") >= 1


def test_dictionary_refuses_bad_filters(viewer: httpx.Client) -> None:
    for params, message in (
        ({"days": "0"}, "days: a whole number from 1 to 366, got &#39;0&#39;"),
        ({"days": "many"}, "days: a whole number from 1 to 366, got &#39;many&#39;"),
        ({"kind": "events"}, "kind: one of event, property, trait, got &#39;events&#39;"),
    ):
        answer = viewer.get("/console/dictionary", params=params)
        assert answer.status_code == 400 and message in answer.text, (params, answer.text)


def test_sparkline_scales_to_its_box() -> None:
    spark = sparkline(["d1", "d2", "d3"], [0, 4, 2])
    points = [tuple(map(float, p.split(","))) for p in spark.points.split()]
    assert [x for x, _ in points] == [0.0, 60.0, 120.0]
    assert points[0][1] == SPARK_HEIGHT - 1 and points[1][1] == 1.0
    assert points[2][1] == pytest.approx((SPARK_HEIGHT - 1 + 1) / 2)
    assert spark.title == "6 datapoints over 3 days; busiest d2 (4)"
    flat = sparkline(["d1"], [0])
    assert len(flat.points.split()) == 2


@pytest.mark.postgres
def test_the_three_pages_on_a_postgresql_outbox(tmp_path: Path) -> None:
    # `crossdock console` against a fleet's PostgreSQL outbox: the same pages, the same answers.
    from audience_helpers import engine_url

    with engine_url("postgresql", tmp_path) as pg:
        found = console_config(tmp_path, pg, audiences=AUDIENCES)
        pipeline = build_pipeline(found)
        try:
            assert not pipeline.accept([
                {"type": "identify", "userId": "ann", "traits": {
                    "email": "ann@example.com", "lifetime_value": 900, "plan": "pro"}},
                {"type": "identify", "userId": "bob", "traits": {"plan": 3}},
            ]).errors
        finally:
            pipeline.close()
        with console_server(found) as url:
            admin = logged_in(url, "ada", ADMIN_PASSWORD)
            try:
                page = admin.get("/console/profiles", params={"ref": "ann@example.com",
                                                               "by": "email"})
                ann = profile_id(page.text)
                assert '/console/audiences/pro">pro</a>' in page.text
                dictionary = admin.get("/console/dictionary").text
                assert "wrong type</small><b>1</b>" in dictionary
                preview = admin.get("/console/audiences/big_spenders/preview",
                                    headers={"HX-Request": "true"}).text
                assert "<b>1</b> would enter" in preview
                token = csrf_of(page.text)
                synced = admin.post("/console/audiences/big_spenders/sync",
                                    data={"csrf": token})
                assert "Synced now: 1 entered" in admin.get(synced.headers["location"]).text
                erased = admin.post("/console/profiles/erase",
                                    data={"csrf": token, "profile": ann, "confirm": "erase"})
                assert (f"Erased profile {ann}; took them out of 2 audiences"
                        in admin.get(erased.headers["location"]).text)
                assert admin.get("/console/profiles",
                                 params={"ref": "ann"}).status_code == 404
            finally:
                admin.close()
