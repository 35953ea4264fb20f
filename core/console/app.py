"""The console's web app: a Starlette app whose pages come from page modules.

    app = make_console_app(ConsoleState(loaded, outbox))

Every route lives under /console/ (so the ops listener hands it every path that starts so,
and `crossdock console` serves the same app). A page module (crossdock.console.pages.*,
listed in `PAGES`) has a `register(pages: PageRegistry)` function that adds its nav entry
and its routes; a route's handler takes a `PageContext` and returns a Response:

    def register(pages: PageRegistry) -> None:
        pages.nav("overview", "Overview", "/")
        pages.get("/", overview)                      # GET /console/
        pages.post("/destinations/{name}/pause", pause)

    def overview(ctx: PageContext) -> Response:
        return ctx.render("overview.html", reading=ctx.state.counts.get())

What the app does around every handler, so no page has to:
- a request without a valid session goes to the login page (htmx requests get 401 and an
  HX-Redirect there);
- a POST needs the session's CSRF token (form field `csrf` or header X-CSRF-Token) and the
  admin role; read-only users get 403;
- `PageError(message)` raised by a handler becomes that message on the page (400 by
  default), never a 500; any other exception is logged and shown as an internal error;
- every POST is logged (crossdock.console.actions) with who made it and how it ended;
- plain (sync) handlers run in a thread: they read the outbox, which must not block the
  daemon's event loop; `async def` handlers (Server-Sent Events) run on the loop.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib import import_module, resources
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from crossdock import __version__
from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.console.auth import COOKIE, CSRF_FIELD, CSRF_HEADER, Auth, User
from crossdock.console.format import install as install_filters
from crossdock.console.reads import PerMinute, accepted_per_minute
from crossdock.console.snapshot import EVERY, Snapshots
from crossdock.metrics import Metrics
from crossdock.outbox.base import Outbox
from crossdock.redact import scrub, secret_values
from crossdock.views import OutboxStatus, outbox_status

log = logging.getLogger("crossdock.console")
#: one line per action (every POST), with who made it
actions_log = logging.getLogger("crossdock.console.actions")

PREFIX = "/console"

#: the nav's slots, in the order shown; a page module fills one with `PageRegistry.nav`
NAV_SLOTS = ("overview", "destinations", "dead-letters", "live", "tester", "profiles",
             "audiences", "dictionary")

#: the page modules the console loads (each has `register(pages)`)
PAGES = (
    "crossdock.console.pages.overview",
    "crossdock.console.pages.destinations",
    "crossdock.console.pages.dead_letters",
    "crossdock.console.pages.live",
    "crossdock.console.pages.tester",
    "crossdock.console.pages.profiles",
    "crossdock.console.pages.audiences",
    "crossdock.console.pages.dictionary",
)

#: the pre-session CSRF token of the login form: a cookie and a form field that must match
LOGIN_COOKIE = "crossdock_login"
LOGIN_CSRF_FIELD = "login_csrf"

#: the largest form body a POST may send (a message pasted into the mapping tester)
MAX_FORM_BYTES = 1_000_000
#: failed logins one client address, and one account name, may have a minute before the
#: next attempt must wait
LOGIN_FAILURES_PER_MINUTE = 10

#: every console answer: no framing, no sharing of pages through caches, scripts and styles
#: only from the console itself (htmx runs with eval off, so no inline script is needed)
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


#: the largest id or count the console takes: what a signed 64-bit column (SQLite's INTEGER,
#: PostgreSQL's bigint) holds
MAX_WHOLE = 2**63 - 1


class PageError(Exception):
    """Bad input or a state a handler cannot act on: shown on the page with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class ConsoleState:
    """What the pages read: the config (replaced by the daemon on a reload) and the outbox
    (the daemon's, or one `crossdock console` opened)."""

    loaded: LoadedConfig
    outbox: Outbox
    #: the collector's counters (served by `crossdock run` with the collector on), or None
    collector: Metrics | None = None
    #: when this console started
    started_at: float = field(default_factory=time.time)
    #: set when the daemon stops (`stop`): live streams end (uvicorn waits for them otherwise)
    stopping: bool = False
    #: seconds between the background reads of the counts (crossdock.console.snapshot)
    counts_every: float = EVERY
    #: seconds between the checks an open live stream makes that its session still holds
    session_check_every: float = 10.0
    _secrets: tuple[LoadedConfig, list[str]] | None = field(default=None, repr=False)
    #: what the overview and destination pages show: the counts, read in the background
    counts: Snapshots = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = Snapshots(self._read_counts, every=self.counts_every)

    def _read_counts(self) -> tuple[OutboxStatus, PerMinute]:
        # What `crossdock status` shows, read by the same function, and the chart's minutes.
        return outbox_status(self.loaded, self.outbox), accepted_per_minute(self.outbox)

    def stop(self) -> None:
        """The console is stopping: live streams end, the counts are no longer read."""
        self.stopping = True
        self.counts.stop()

    def secrets(self) -> list[str]:
        """Every secret value of every configured destination, longest first (read again
        when a reload replaced the config)."""
        if self._secrets is None or self._secrets[0] is not self.loaded:
            found: set[str] = set()
            for destination in self.loaded.destinations:
                found.update(secret_values(destination.plugin.settings))
            self._secrets = (self.loaded, sorted(found, key=len, reverse=True))
        return self._secrets[1]

    def destination(self, name: str) -> ConfiguredDestination:
        """An enabled destination of the config, or a PageError naming the known ones."""
        try:
            return self.loaded.destination(name)
        except KeyError:
            known = ", ".join(d.name for d in self.loaded.destinations) or "none"
            raise PageError(f"destination: no enabled destination {name!r} (enabled: "
                            f"{known})", 404) from None

    def scrub(self, text: str) -> str:
        """Text from the outbox (an error, a reason, a response body) with every
        destination secret in it replaced (crossdock.redact)."""
        return scrub(text, self.secrets())


def whole_number(name: str, raw: str, low: int = 0, high: int = MAX_WHOLE) -> int:
    """`raw` (a query, form or path value) as a whole number from `low` to `high`, or a
    PageError naming the field and the rule. Only ASCII digits: str.isdigit() also takes
    "\u00b2" and other digits int() refuses, and an unbounded number overflows the outbox's
    64-bit columns; every number the console reads comes through here."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high))
            and low <= int(text) <= high):
        raise PageError(f"{name}: a whole number from {low} to {high}, got {raw!r}")
    return int(text)


Handler = Callable[["PageContext"], Response | Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class NavItem:
    slot: str
    title: str
    path: str


class PageContext:
    """What a handler gets: the request, who is logged in, the form of a POST, and ways to
    answer."""

    def __init__(self, console: Console, request: Request, user: User,
                 form: dict[str, list[str]]) -> None:
        self.console = console
        self.state = console.state
        self.request = request
        self.user = user
        self.form = form
        self.notes: list[str] = []

    @property
    def htmx(self) -> bool:
        """Whether htmx asked (answer with the part of the page it swaps in)."""
        return self.request.headers.get("hx-request") == "true"

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()

    def field(self, name: str, default: str = "") -> str:
        """A form field of a POST (its first value)."""
        values = self.form.get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return self.form.get(name, [])

    def note(self, text: str) -> None:
        """Add to what the action log line of this POST says it did."""
        self.notes.append(text)

    def url(self, path: str) -> str:
        """A console path as a URL (`/destinations/hook` -> `/console/destinations/hook`)."""
        return PREFIX + path

    def redirect(self, path: str) -> Response:
        """After a POST: go to a console page (303, so a reload does not post again)."""
        return RedirectResponse(self.url(path), status_code=303)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return self.console.render(template, self.request, self.user, status, **values)

    def render_text(self, template: str, **values: Any) -> str:
        """A template as text (a fragment sent in a stream)."""
        return self.console.render_text(template, self.request, self.user, **values)


class PageRegistry:
    """What a page module's `register` adds its nav entry and routes to."""

    def __init__(self) -> None:
        self.items: dict[str, NavItem] = {}
        self.routes: list[tuple[str, str, Handler]] = []

    def nav(self, slot: str, title: str, path: str) -> None:
        """Fill a nav slot (one of NAV_SLOTS) with a link to `path` (under /console)."""
        if slot not in NAV_SLOTS:
            raise ValueError(f"nav slot {slot!r}: not one of {', '.join(NAV_SLOTS)}")
        if slot in self.items:
            raise ValueError(f"nav slot {slot!r} is filled twice")
        self.items[slot] = NavItem(slot, title, path)

    def get(self, path: str, handler: Handler) -> None:
        self.routes.append(("GET", path, handler))

    def post(self, path: str, handler: Handler) -> None:
        """A route that changes something: admin role and CSRF token required, logged."""
        self.routes.append(("POST", path, handler))

    def nav_items(self) -> list[NavItem]:
        return [self.items[slot] for slot in NAV_SLOTS if slot in self.items]


class Console:
    """The app's parts: state, auth, templates and the registered pages."""

    def __init__(self, state: ConsoleState, pages: Iterable[str] = PAGES) -> None:
        self.state = state
        self._auth: tuple[LoadedConfig, Auth] | None = None
        self.registry = PageRegistry()
        for module in pages:
            import_module(module).register(self.registry)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("crossdock.console", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined)
        install_filters(self.templates, state)
        self._failures: dict[str, list[float]] = {}

    @property
    def auth(self) -> Auth:
        """The sessions' checks, made again when a reload replaced the config (so a changed
        credential or role applies at once)."""
        if self._auth is None or self._auth[0] is not self.state.loaded:
            self._auth = (self.state.loaded, Auth(self.state.loaded.config.console,
                                                  self.state.outbox))
        return self._auth[1]

    async def user_of(self, request: Request) -> User | None:
        """The user of a request's session cookie (read from the outbox, off the loop)."""
        cookie = request.cookies.get(COOKIE)
        return await run_in_threadpool(self.auth.read, cookie) if cookie else None

    def render(self, template: str, request: Request, user: User | None, status: int = 200,
               **values: Any) -> HTMLResponse:
        return HTMLResponse(self.render_text(template, request, user, **values),
                            status_code=status)

    def render_text(self, template: str, request: Request, user: User | None,
                    **values: Any) -> str:
        page = self.templates.get_template(template)
        return page.render(prefix=PREFIX, user=user, version=__version__,
                           csrf=self.auth.csrf(user) if user is not None else "",
                           nav=self.registry.nav_items(), path=request.url.path, **values)

    def app(self, *, standalone: bool = False) -> Starlette:
        routes = [Route("/", self._root, methods=["GET"])] if standalone else []
        routes += [
            Route(PREFIX, self._root, methods=["GET"]),
            Route(PREFIX + "/login", self._login_form, methods=["GET"]),
            Route(PREFIX + "/login", self._login, methods=["POST"]),
            Route(PREFIX + "/logout", self._logout, methods=["POST"]),
            Route(PREFIX + "/static/{name}", self._static, methods=["GET", "HEAD"]),
        ]
        for method, path, handler in self.registry.routes:
            routes.append(Route(PREFIX + path, self._endpoint(method, handler),
                                methods=[method]))
        app = Starlette(routes=routes, exception_handlers={404: self._missing,
                                                           405: self._missing})
        app.add_middleware(_SecurityHeaders)
        return app

    async def _missing(self, request: Request, exc: Exception) -> Response:
        """A path no page has (or a method it does not take): said on a page, not a bare
        "Not Found"."""
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        user = await self.user_of(request)
        message = (f"{request.url.path}: no such page" if status == 404 else
                   f"{request.method} {request.url.path}: this page does not take a "
                   f"{request.method}")
        return self.render("error.html", request, user, status, message=message)

    # -- around every page ----------------------------------------------------------------

    def _endpoint(self, method: str, handler: Handler) -> Callable[[Request],
                                                                   Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            user = await self.user_of(request)
            if user is None:
                return self._to_login(request)
            form: dict[str, list[str]] = {}
            if method == "POST":
                try:
                    form = await _read_form(request)
                except PageError as exc:
                    return self.render("error.html", request, user, exc.status,
                                       message=exc.message)
                token = request.headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) or [""])[0]
                if not self.auth.csrf_ok(user, token):
                    self._act(user, request, 403, ["refused: no valid CSRF token"])
                    return self.render("error.html", request, user, 403, message=(
                        "This form is out of date (its CSRF token is missing or belongs to "
                        "another session): reload the page and try again."))
                if not user.can_act:
                    self._act(user, request, 403, ["refused: read-only"])
                    return self.render("error.html", request, user, 403, message=(
                        f"{user.name} is read-only: only an admin may do this."))
            ctx = PageContext(self, request, user, form)
            response = await self._run(handler, ctx)
            if method == "POST":
                self._act(user, request, response.status_code, ctx.notes)
                if response.status_code < 400:
                    # An action changed the outbox: the page it leads to shows its effect,
                    # not the background snapshot from before it.
                    await run_in_threadpool(self.state.counts.refresh)
            return response

        return endpoint

    async def _run(self, handler: Handler, ctx: PageContext) -> Response:
        try:
            if inspect.iscoroutinefunction(handler):
                result = await handler(ctx)
            else:
                result = await run_in_threadpool(handler, ctx)
            assert isinstance(result, Response)
            return result
        except PageError as exc:
            ctx.note(f"refused: {exc.message}")
            template = "error_partial.html" if ctx.htmx else "error.html"
            return ctx.render(template, exc.status, message=exc.message)
        except Exception:
            log.exception("console: %s %s failed", ctx.request.method, ctx.request.url.path)
            ctx.note("failed: internal error (logged)")
            return ctx.render("error.html", 500, message=(
                "Something went wrong on our side; the daemon's log has the details."))

    def _act(self, user: User, request: Request, status: int, notes: list[str]) -> None:
        actions_log.info("console: %s (%s) POST %s -> %d%s", user.name, user.role,
                         request.url.path, status, "".join(f"; {n}" for n in notes))

    def _to_login(self, request: Request) -> Response:
        # The path and its query: a shared link to a filtered list lands filtered.
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = f"{PREFIX}/login?next={quote(wanted, safe='/')}"
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"hx-redirect": target})
        return RedirectResponse(target, status_code=303)

    # -- login ----------------------------------------------------------------------------

    async def _root(self, request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    async def _login_form(self, request: Request) -> Response:
        return self._login_page(request, 200, next=_safe_next(
            request.query_params.get("next")), error="", name="")

    def _login_page(self, request: Request, status: int, **values: Any) -> Response:
        """The login form with its pre-session CSRF token: a random value both in a cookie
        and in the form (a login POST must carry the two alike, so another site cannot log
        the browser in to an account of its choosing)."""
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if not 32 <= len(token) <= 100:
            token = secrets.token_urlsafe(32)
        response = self.render("login.html", request, None, status, login_csrf=token,
                               **values)
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=PREFIX + "/login",
                            httponly=True, samesite="strict",
                            secure=self.state.loaded.config.console.secure_cookie)
        return response

    async def _login(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        try:
            form = await _read_form(request)
        except PageError as exc:
            return self._login_page(request, exc.status, next=PREFIX + "/",
                               error=exc.message, name="")
        name = (form.get("name") or [""])[0].strip()
        target = _safe_next((form.get("next") or [""])[0])
        expected = request.cookies.get(LOGIN_COOKIE) or ""
        given = (form.get(LOGIN_CSRF_FIELD) or [""])[0]
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            actions_log.warning("console: login for %r from %s refused: no valid login form "
                                "token", name, client)
            return self._login_page(request, 403, next=target, name=name, error=(
                "This login form is out of date (its token is missing or another's): log in "
                "again from this page."))
        now = time.time()
        # Counted per client address and per account name: a guesser spreading guesses over
        # addresses still meets the account's limit (which may lock its owner out for a
        # minute: the price of not letting the guessing go on).
        buckets = (f"address:{client}", f"account:{name.casefold()}")
        refused = next((b for b in buckets if self._failed(b, now) >= LOGIN_FAILURES_PER_MINUTE),
                       None)
        if refused is not None:
            actions_log.warning("console: login refused for %r from %s: too many failures "
                                "for this %s", name, client, refused.split(":")[0])
            return self._login_page(request, 429, next=target, name=name,
                               error=f"Too many failed logins for this {refused.split(':')[0]}"
                                     ": wait a minute and try again.")
        found = self.auth.login(name, (form.get("password") or [""])[0])
        if found is None:
            for bucket in buckets:
                self._failures.setdefault(bucket, []).append(now)
            actions_log.warning("console: failed login for %r from %s", name, client)
            return self._login_page(request, 401, next=target, name=name,
                               error="Wrong name or password.")
        user, cookie = await run_in_threadpool(self.auth.issue, *found)
        actions_log.info("console: %s (%s) logged in from %s", user.name, user.role, client)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, cookie, max_age=int(user.expires_at - now), path=PREFIX,
                            httponly=True, samesite="strict",
                            secure=self.state.loaded.config.console.secure_cookie)
        return response

    def _failed(self, bucket: str, now: float) -> int:
        """Failed logins of a bucket (an address, an account) in the last minute."""
        if len(self._failures) > 10_000:  # buckets that stopped failing are forgotten
            self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - 60}
        recent = [t for t in self._failures.get(bucket, []) if t > now - 60]
        self._failures[bucket] = recent
        return len(recent)

    async def _logout(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is not None:
            try:
                form = await _read_form(request)
            except PageError as exc:
                return self.render("error.html", request, user, exc.status, message=exc.message)
            if not self.auth.csrf_ok(user, (form.get(CSRF_FIELD) or [""])[0]):
                return self.render("error.html", request, user, 403,
                                   message="Log out from the console's own page.")
            await run_in_threadpool(self.auth.end, user)
            actions_log.info("console: %s (%s) logged out", user.name, user.role)
        response = RedirectResponse(PREFIX + "/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # -- static files ---------------------------------------------------------------------

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        kind = next((k for suffix, k in kinds.items() if name.endswith(suffix)), None)
        file = resources.files("crossdock.console") / "static" / name
        if kind is None or "/" in name or not file.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        # The files change only with the version: cached for a day, tagged by the version.
        return Response(file.read_bytes(), media_type=kind, headers={
            "cache-control": "public, max-age=86400", "etag": f'"{__version__}-{name}"'})


class _SecurityHeaders:
    """SECURITY_HEADERS on every answer (static files keep their own cache-control)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
                    if name.encode() not in present]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _read_form(request: Request) -> dict[str, list[str]]:
    """A POST's url-encoded form (every form of the console is one), at most MAX_FORM_BYTES."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(f"the form is larger than {MAX_FORM_BYTES:,} bytes", 413)
    if body and kind != "application/x-www-form-urlencoded":
        raise PageError(f"send the form as application/x-www-form-urlencoded, not {kind!r}",
                        415)
    try:
        return parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise PageError("the form is not UTF-8 text") from exc


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path (and its query) only, never another site
    (a backslash some browsers read as "/", or a ".." segment leaving /console, is refused)."""
    if (target and target.startswith(PREFIX + "/") and "\\" not in target
            and ".." not in target.split("?", 1)[0].split("/")):
        return target
    return PREFIX + "/"


def make_console_app(state: ConsoleState, pages: Iterable[str] = PAGES, *,
                     standalone: bool = False) -> Starlette:
    """The console's ASGI app (every route under /console/; `standalone`: / leads there,
    for `crossdock console`, which serves nothing else)."""
    return Console(state, pages).app(standalone=standalone)

