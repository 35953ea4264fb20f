"""Profiles: look a person up by profile id, userId, anonymousId or email; their identities,
attributes with types, consent, sessions, audiences, merges and attribute problems; erase
them (admin, after a confirmation page). Through crossdock.people, as `crossdock profiles
show` and `delete`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from crossdock.console.app import PageContext, PageError, PageRegistry
from crossdock.console.pages.people import pipeline_of
from crossdock.outbox.base import shared_sql
from crossdock.people import erase, look_up

#: the lookup form's choices: value -> label
KINDS = {"": "any id", "userId": "user id", "anonymousId": "anonymous id", "email": "email",
         "profileId": "profile id"}
#: the longest id the form takes (ids are at most 100 characters, emails 254)
MAX_REF = 300
#: what an admin types to confirm an erasure
CONFIRM = "erase"


def register(pages: PageRegistry) -> None:
    pages.nav("profiles", "Profiles", "/profiles")
    pages.get("/profiles", profiles)
    pages.get("/profiles/erase", confirm)
    pages.post("/profiles/erase", erase_profile)


def _find(ctx: PageContext, ref: str, by: str | None) -> dict[str, Any] | None:
    """`crossdock.people.look_up`; its ValueError (an unknown `by`) shown on the page."""
    if len(ref) > MAX_REF:
        raise PageError(f"ref: at most {MAX_REF} characters ({len(ref)} given)")
    pipeline = pipeline_of(ctx)
    assert pipeline.profiles is not None
    try:
        with ctx.state.outbox.transaction() as tx:
            return look_up(pipeline.profiles, shared_sql(tx), ref, by)
    except ValueError as exc:
        raise PageError(str(exc)) from exc


def profiles(ctx: PageContext) -> Response:
    ref, by = ctx.query("ref"), ctx.query("by") or None
    profile = None
    problem = ""
    status = 200
    if ref:
        profile = _find(ctx, ref, by)
        if profile is None:
            problem = (f"No profile for {ref!r} (looked up as "
                       f"{KINDS[by or ''] if by else 'profile id, user id, anonymous id, email'}).")
            status = 404
    erased = ctx.query("erased")
    return ctx.render("profiles.html", status, ref=ref, by=by or "", kinds=KINDS,
                      profile=profile, problem=problem, erased=erased,
                      left=ctx.query("left"), rows=ctx.query("rows"))


def confirm(ctx: PageContext) -> Response:
    """The confirmation page of an erasure (a GET: nothing changes until its form posts)."""
    profile_id = ctx.query("profile")
    if not profile_id:
        raise PageError("profile: the id of the profile to erase is required")
    profile = _find(ctx, profile_id, "profileId")
    if profile is None:
        raise PageError(f"profile: no profile {profile_id!r} (erased already?)", 404)
    return ctx.render("profile_erase.html", profile=profile, confirm_word=CONFIRM)


def erase_profile(ctx: PageContext) -> Response:
    profile_id = ctx.field("profile").strip()
    if not profile_id:
        raise PageError("profile: the id of the profile to erase is required")
    if ctx.field("confirm").strip().lower() != CONFIRM:
        raise PageError(f"confirm: type {CONFIRM!r} to erase profile {profile_id}")
    erased = erase(pipeline_of(ctx), profile_id, "profileId")
    if erased is None:
        raise PageError(f"profile: no profile {profile_id!r} (erased already?)", 404)
    ctx.note(f"erased profile {erased.profile_id} ({len(erased.merged)} merged profiles, "
             f"left {erased.audiences_left} audiences, {erased.rows} outbox rows)")
    return ctx.redirect("/profiles?" + urlencode({
        "erased": erased.profile_id, "left": erased.audiences_left, "rows": erased.rows}))
