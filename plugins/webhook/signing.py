"""Webhook signatures: Standard Webhooks `v1,<base64>` and Segment-style hex `X-Signature`.

Used by the destination to sign and by the contract fake to verify, so both sides read the
secret the same way: a `whsec_<base64>` secret (the Standard Webhooks format) signs with the
decoded key bytes, any other secret with its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Literal

from crossdock.plugins.webhook.const import SECRET_PREFIX

Digest = Literal["sha1", "sha256"]


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a secret starting with {SECRET_PREFIX} must be base64 after it") \
                from exc
    return secret.encode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def x_signature(secret: str, body: bytes, digest: Digest = "sha1") -> str:
    """Hex HMAC of the raw body, as Segment-style receivers check it."""
    return hmac.new(secret_key(secret), body, getattr(hashlib, digest)).hexdigest()


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
