"""The operator console (docs/console.md): server-rendered pages (Jinja2 templates in this
package) with htmx for partial updates and Server-Sent Events for live views, its static
files vendored here (no CDN, no build step). Served by `crossdock run` on the ops listener
under /console/ when `console:` configures a token or users, and by `crossdock console`.

    from crossdock.console import ConsoleState, make_console_app
    app = make_console_app(ConsoleState(loaded, outbox))

Pages read through the same functions as the CLI (status, dead letters, route preview), so
the two never disagree; crossdock.console.app says how a page module adds its routes.
"""

from crossdock.console.app import (
    NAV_SLOTS,
    PAGES,
    PREFIX,
    ConsoleState,
    PageContext,
    PageError,
    PageRegistry,
    make_console_app,
)

__all__ = ["NAV_SLOTS", "PAGES", "PREFIX", "ConsoleState", "PageContext", "PageError",
           "PageRegistry", "make_console_app"]
