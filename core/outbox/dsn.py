"""A PostgreSQL connection string made fit to print: every credential replaced by ***.

libpq takes a password in several places, and an outbox URL shows up in the daemon's start
line, `crossdock db upgrade`, and every error about the outbox:

    postgresql://user:SECRET@host/db                 the URL's user info
    postgresql://user@host/db?password=SECRET        a URL query parameter (its name may be
                                                     percent-encoded: libpq decodes it)
    host=db user=crossdock password='SE CRET'        a key/value connection string
    ...sslpassword=SECRET                            the passphrase of the client key

`passfile` and `sslkey` name files, not secrets, and are shown as they are.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
#: the connection parameters whose values are secrets
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})

_URL_PREFIXES = ("postgresql://", "postgres://")
# key = value in a key/value connection string: a value is 'quoted' (with \' and \\ escapes)
# or runs to the next whitespace.
_KEYWORD_VALUE = re.compile(r"(?P<key>\w+)(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|\S*)")


def redact(conninfo: str) -> str:
    """`conninfo` (a postgresql:// URL or a key/value string) with every secret as ***."""
    if conninfo.startswith(_URL_PREFIXES):
        return _redact_url(conninfo)
    if "=" in conninfo:
        return _KEYWORD_VALUE.sub(_mask_pair, conninfo)
    return conninfo


def _mask_pair(match: re.Match[str]) -> str:
    if match.group("key") not in SECRET_PARAMETERS:
        return match.group(0)
    return f"{match.group('key')}{match.group('eq')}{MASK}"


def _redact_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    authority_and_path, question, query = rest.partition("?")
    # The user info ends at the last @ before the query: a password holding an unencoded @ or
    # / is hidden whole rather than cut where a parser would stop.
    userinfo, at, hosts_and_path = authority_and_path.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        authority_and_path = f"{user}:{MASK}@{hosts_and_path}"
    if question:
        query = "&".join(_mask_query_pair(pair) for pair in query.split("&"))
    return f"{scheme}://{authority_and_path}{question}{query}"


def _mask_query_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    if eq and unquote(key).strip() in SECRET_PARAMETERS:
        return f"{key}={MASK}"
    return pair
