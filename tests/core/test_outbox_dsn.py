"""Outbox URLs made fit to print: every libpq credential form hidden (crossdock.outbox.dsn)."""

from __future__ import annotations

import pytest

from crossdock.outbox.dsn import redact

SECRET = "s3cr3t-Pa55"

#: (connection string, what it must read as once redacted)
FORMS = [
    (f"postgresql://crossdock:{SECRET}@db.example:5432/crossdock",
     "postgresql://crossdock:***@db.example:5432/crossdock"),
    (f"postgres://crossdock:{SECRET}@db/crossdock", "postgres://crossdock:***@db/crossdock"),
    # the password as a query parameter, alone and among others
    (f"postgresql://crossdock@db/crossdock?password={SECRET}",
     "postgresql://crossdock@db/crossdock?password=***"),
    (f"postgresql://db/crossdock?user=crossdock&password={SECRET}&sslmode=require",
     "postgresql://db/crossdock?user=crossdock&password=***&sslmode=require"),
    # libpq percent-decodes parameter names too
    (f"postgresql://db/crossdock?pass%77ord={SECRET}", "postgresql://db/crossdock?pass%77ord=***"),
    (f"postgresql://db/crossdock?sslpassword={SECRET}&sslkey=/etc/key.pem",
     "postgresql://db/crossdock?sslpassword=***&sslkey=/etc/key.pem"),
    # both at once, several hosts, and a percent-encoded password
    (f"postgresql://u:{SECRET}%40x@h1:5432,h2:5433/db?password={SECRET}",
     "postgresql://u:***@h1:5432,h2:5433/db?password=***"),
    # an unencoded @ or / in the password: hidden whole, not cut where a parser would stop
    (f"postgresql://u:{SECRET}@/x@db/crossdock", "postgresql://u:***@db/crossdock"),
    # key/value connection strings, plain, quoted with spaces and escapes, spaced around =
    (f"host=db user=crossdock password={SECRET} dbname=crossdock",
     "host=db user=crossdock password=*** dbname=crossdock"),
    (f"host=db password='{SECRET} with \\' quote' dbname=crossdock",
     "host=db password=*** dbname=crossdock"),
    (f"host=db password = {SECRET} sslpassword={SECRET}",
     "host=db password = *** sslpassword=***"),
    # a passfile names a file; nothing to hide
    ("postgresql://u@db/crossdock?passfile=/home/u/.pgpass",
     "postgresql://u@db/crossdock?passfile=/home/u/.pgpass"),
    ("postgresql://crossdock@db/crossdock", "postgresql://crossdock@db/crossdock"),
    ("host=db user=crossdock", "host=db user=crossdock"),
]


@pytest.mark.parametrize(("conninfo", "shown"), FORMS)
def test_every_credential_form_is_hidden(conninfo: str, shown: str) -> None:
    assert redact(conninfo) == shown
    assert SECRET not in redact(conninfo)
