"""Webhook signatures: Standard Webhooks `v1,<base64>` and Segment-style hex `X-Signature`.

Used by the destination to sign and by the contract fake to verify, so both sides read the
secret the same way.

- Standard Webhooks: the secret is the base64 of the key, with or without the `whsec_` prefix
  and with or without `=` padding, as the reference libraries read it (standardwebhooks'
  `Webhook.__init__` strips the prefix and decodes `secret + "=="`). What they would decode
  silently into another key (characters outside base64, such as `-` or a space) or into no key
  at all is refused by `standard_key`, so `crossdock validate` names it.
- X-Signature: a `whsec_<base64>` secret signs with the decoded key bytes, any other secret
  with its UTF-8 bytes (Segment-style receivers HMAC with the shared text).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Literal

from crossdock.plugins.webhook.const import SECRET_PREFIX

Digest = Literal["sha1", "sha256"]

_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_BASE64_CHAR = re.compile(r"[A-Za-z0-9+/=]")


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64-decoded after an optional `whsec_`
    prefix, padding optional. ValueError names what is wrong."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    if not encoded:
        raise ValueError("must not be empty: a Standard Webhooks secret is the base64 of a "
                         "key (24 to 64 random bytes), optionally prefixed whsec_")
    if not _BASE64.match(encoded):
        bad = next((ch for ch in encoded if not _BASE64_CHAR.match(ch)), None)
        why = (f"{bad!r} is not a base64 character" if bad is not None
               else "'=' may only pad its end")
        raise ValueError(f"must be base64 after the optional {SECRET_PREFIX} prefix "
                         f"(Standard Webhooks' secret format); {why}")
    try:
        # "==" as the reference libraries add it: extra padding is ignored.
        key = base64.b64decode(encoded + "==")
    except binascii.Error as exc:
        raise ValueError(f"is not valid base64 ({len(encoded.rstrip('='))} characters "
                         "cannot be a base64 encoding)") from exc
    if not key:
        raise ValueError("decodes to an empty key")
    return key


def x_signature_key(secret: str) -> bytes:
    """The HMAC key of an X-Signature: a `whsec_` secret's decoded key, else the UTF-8 text."""
    if secret.startswith(SECRET_PREFIX):
        return standard_key(secret)
    return secret.encode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def x_signature(secret: str, body: bytes, digest: Digest = "sha1") -> str:
    """Hex HMAC of the raw body, as Segment-style receivers check it."""
    return hmac.new(x_signature_key(secret), body, getattr(hashlib, digest)).hexdigest()


def verify_standard(secret: str, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether any `v1,` signature in a (space-separated) webhook-signature header matches."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    expected = standard_signature(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, sig) for sig in header.split())


def verify_x_signature(secret: str, body: bytes, header: str, digest: Digest = "sha1") -> bool:
    """Whether an X-Signature header matches the body."""
    return hmac.compare_digest(x_signature(secret, body, digest), header.strip().lower())
