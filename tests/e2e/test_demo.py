"""`crossdock demo`, the README's first command, as a user runs it: a real process that starts
the fakes, forwards the sample messages and reports what each destination received, and what
the audience `high_value` left in the Facebook Custom Audience and the Mailchimp tags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from e2e_helpers import all_plugins_env, crossdock, status_json

from crossdock.demo import DEMO_PEOPLE, sample_messages
from crossdock.plugins.facebook_audience.normalize import prepare

_FAKE_LINE = re.compile(r"^\s+fake (\S+)\s+for destination (\S+)$", re.MULTILINE)
_RECEIVED = re.compile(r"^(\S+) \((\S+)\) received (\d+) requests$", re.MULTILINE)
ALL_PLUGINS = {"webhook", "slack", "sessionm", "mailchimp", "facebook_audience", "attentive",
               "cordial", "pipedrive", "brevo", "twilio", "sfmc", "amplitude", "tiktok",
               "vtex", "shopify", "files", "s3", "sftp", "ftp",
               "mailup", "sfcc", "google_ads", "function"}


def test_demo_delivers_to_every_destination(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = crossdock("demo", "--keep", str(keep), timeout=120, env=all_plugins_env())
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    destinations = {name: plugin for plugin, name in _FAKE_LINE.findall(out)}
    assert set(destinations.values()) == ALL_PLUGINS, out
    received = {name: (plugin, int(n)) for name, plugin, n in _RECEIVED.findall(out)}
    assert set(received) == set(destinations), out
    for name, (plugin, count) in received.items():
        assert plugin == destinations[name]
        assert count > 0, f"{name} received nothing:\n{out}"
    # The malformed sample is refused by its field, and the rest still goes through.
    assert re.search(r"; 1 refused:\n\s+message \d+: userId: ", out), out

    # What the demo printed is what its outbox says.
    status = status_json(keep / "crossdock.yaml", env=all_plugins_env())
    assert set(status) == set(destinations)
    for name, counts in status.items():
        assert counts["delivered"] > 0, (name, counts)
        assert (counts["queued"], counts["leased"], counts["dead"]) == (0, 0, 0), (name, counts)
    assert f"kept {keep}" in out

    # The flows that search or read before they write made each person once.
    emails = sorted(address for _, address, *_ in DEMO_PEOPLE)
    cordial = _section(out, "cordial")
    assert re.findall(r"^  = contact (\S+): ", cordial, re.MULTILINE) == emails, cordial
    vtex = _section(out, "vtex")
    assert re.findall(r"^  = document (\S+): ", vtex, re.MULTILINE) == emails, vtex
    shopify = _section(out, "shopify")
    assert re.findall(r"^  = customer (\S+): ", shopify, re.MULTILINE) == emails, shopify
    pipedrive = _section(out, "pipedrive")
    names = sorted(f"{first} {last}" for _, _, first, last, _ in DEMO_PEOPLE)
    held = re.search(r"^  = 3 persons: (.*); (\d+) notes", pipedrive, re.MULTILINE)
    assert held is not None and sorted(held.group(1).split(", ")) == names, pipedrive
    assert "POST attributes/custom" in _section(out, "attentive")
    # Marketing Cloud: every person a row, one token for the whole demo.
    sfmc = _section(out, "sfmc")
    users = sorted(user_id for user_id, *_ in DEMO_PEOPLE)
    assert re.findall(r"^  = row (\S+): ", sfmc, re.MULTILINE) == users, sfmc
    assert "; 1 token request(s)" in sfmc, sfmc
    # Commerce Cloud: every person's customer profile updated, one Account Manager token.
    sfcc = _section(out, "sfcc")
    assert re.findall(r"^  = customer (\S+): ", sfcc, re.MULTILINE) == users, sfcc
    assert "= 1 token request(s)" in sfcc, sfcc
    # Google Ads: the audience's members in the Customer Match list, one token.
    google = _section(out, "google_ads")
    held = re.search(r"user list 555: (\d+) identifiers; 0 conversions; 1 token request", google)
    assert held is not None and int(held.group(1)) > 0, google
    amplitude = _section(out, "amplitude")
    assert "POST /2/httpapi [" in amplitude and "POST /identify" in amplitude, amplitude
    assert re.search(r"POST /event/track/ \[.*Purchase.*\] -> code 0", _section(out, "tiktok"))
    # MailUp: the email consent is on by default, so every person is subscribed, once.
    mailup = _section(out, "mailup")
    assert re.findall(r"^  = recipient (\S+): list 1 (\S+)", mailup, re.MULTILINE) == [
        (address, "Subscribed") for address in emails], mailup
    assert "  = 1 token request(s)" in mailup, mailup


def _section(out: str, name: str) -> str:
    """The lines the demo printed under one destination's "received" header."""
    start = out.index(f"\n{name} (")
    end = out.find("\n\n", start + 1)
    return out[start:end if end != -1 else None]


def _lifetime_values(messages: list[Any]) -> dict[str, list[int]]:
    """Each person's lifetime_value after every message that set it, in order: the test's own
    reading of the sample traffic (identify traits and context.traits)."""
    history: dict[str, list[int]] = {}
    for m in messages:
        traits = {**(m.get("traits") or {}), **(m.get("context") or {}).get("traits", {})}
        if "lifetime_value" in traits and len(m.get("userId", "")) <= 100:
            history.setdefault(m["userId"], []).append(traits["lifetime_value"])
    return history


def test_demo_syncs_the_high_value_audience_to_facebook_mailchimp_and_shopify() -> None:
    history = _lifetime_values(sample_messages(20))
    email = {user_id: address for user_id, address, *_ in DEMO_PEOPLE}
    inside = {u for u, values in history.items() if values[-1] > 500}
    left = {u for u, values in history.items() if values[-1] <= 500 < max(values)}
    # The sample traffic moves people both ways: two end in the audience, one enters and leaves.
    assert inside == {"u-ada", "u-grace"} and left == {"u-alan"}, history

    result = crossdock("demo", timeout=120, env=all_plugins_env())
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    fed = re.search(r"^  audience high_value \(lifetime_value > 500\) → (.*)$", out, re.MULTILINE)
    assert fed is not None, out
    assert {"mailchimp-main", "fb-high-value", "shopify"} <= set(fed.group(1).split(", "))

    # Mailchimp: every identified person is a member; the tag holds exactly the audience, and
    # the person who left had the tag taken off.
    mailchimp = _section(out, "mailchimp-main")
    for _, address, first, last, _ in DEMO_PEOPLE:
        assert f"PUT member {address} FNAME={first} LNAME={last}" in mailchimp, mailchimp
    assert "= list a1b2c3d4e5 now has 3 members" in mailchimp, mailchimp
    tagged = re.search(r"^  = tag high_value: (.*)$", mailchimp, re.MULTILINE)
    assert tagged is not None, mailchimp
    assert tagged.group(1).split(", ") == sorted(email[u] for u in inside)
    for user_id in left:
        assert f"POST tags -high_value of {email[user_id]}" in mailchimp, mailchimp

    # Shopify: the audience is a customer tag, taken off the person who left.
    shopify = _section(out, "shopify")
    tags = dict(re.findall(r"^  = customer (\S+): email \S+, tags (\S+)$", shopify,
                           re.MULTILINE))
    assert tags == {address: "high_value" if user_id in inside else "-"
                    for user_id, address, *_ in DEMO_PEOPLE}, shopify

    # Facebook: the Custom Audience holds exactly the audience's people, by SHA-256 of their
    # normalized email (never the address itself), and the one who left was removed.
    facebook = _section(out, "fb-high-value")
    assert "@" not in facebook, facebook
    held = re.search(r"^  = audience 6000000000001 holds (\d+): EMAIL (.*)$", facebook,
                     re.MULTILINE)
    assert held is not None, facebook
    assert int(held.group(1)) == len(inside)
    assert held.group(2).split(", ") == sorted(prepare("EMAIL", email[u])[:10] + "…"
                                               for u in inside)
    removed = re.search(r"^  DELETE remove \d+ (?:person|people) \(EMAIL, FN, LN hashed\): "
                        r"(.*) -> 200$", facebook, re.MULTILINE)
    assert removed is not None, facebook
    assert {prepare("EMAIL", email[u])[:10] + "…" for u in left} <= set(
        removed.group(1).split(", "))
