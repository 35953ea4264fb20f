"""The console's pages: one module each, with `register(pages: PageRegistry)`, listed in
crossdock.console.app.PAGES (docs/console.md, "Adding a page")."""
