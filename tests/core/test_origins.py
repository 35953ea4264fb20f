"""Origin patterns (crossdock.origins) and the write keys' `origins` in crossdock.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from crossdock.cli import cli
from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.origins import OriginPattern, normalize_origin, normalize_pattern


@pytest.mark.parametrize(("written", "normalized"), [
    ("*", "*"),
    ("https://Shop.Example.com", "https://shop.example.com"),
    ("https://shop.example.com:443", "https://shop.example.com"),
    ("http://127.0.0.1:80", "http://127.0.0.1"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://[::1]:3000", "http://[::1]:3000"),
    ("https://*.example.com", "https://*.example.com"),
    ("http://*.shop.test:8443", "http://*.shop.test:8443"),
])
def test_patterns_have_one_spelling(written: str, normalized: str) -> None:
    assert normalize_pattern(written) == normalized


@pytest.mark.parametrize(("written", "problem"), [
    ("example.com", "'example.com' needs a scheme: write 'https://example.com'"),
    ("*.example.com", "'*.example.com' needs a scheme: write 'https://*.example.com'"),
    ("https://example.com/", "'https://example.com/' is not an origin: no trailing slash, "
                             "write 'https://example.com'"),
    ("https://example.com/shop", "'https://example.com/shop' is not an origin: an origin has "
                                 "no path, write 'https://example.com'"),
    ("https://a.*.example.com", "'https://a.*.example.com': '*' may only stand for the "
                                "leading labels of a host"),
    ("https://*", "'https://*': '*' may only stand for the leading labels"),
    ("https://*.com", "'https://*.com': '*.com' would match every site under the top-level "
                      "domain 'com'; name the site's domain"),
    ("null", "'null' cannot be listed"),
])
def test_a_bad_pattern_says_what_to_write(written: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_pattern(written)
    assert str(caught.value).startswith(problem)


@pytest.mark.parametrize(("pattern", "origin", "allowed"), [
    ("https://shop.example.com", "https://shop.example.com", True),
    ("https://shop.example.com", "https://SHOP.example.com:443", True),
    ("https://shop.example.com", "http://shop.example.com", False),
    ("https://shop.example.com", "https://shop.example.com:8443", False),
    ("https://shop.example.com", "https://shop.example.com.evil.test", False),
    ("https://*.example.com", "https://eu.example.com", True),
    ("https://*.example.com", "https://a.b.example.com", True),
    ("https://*.example.com", "https://example.com", False),
    ("https://*.example.com", "https://badexample.com", False),
    ("https://*.example.com", "http://eu.example.com", False),
    ("https://*.example.com", "https://eu.example.com:8443", False),
    ("https://*.example.com", "null", False),
    ("*", "https://anything.test", True),
    ("*", "null", True),
])
def test_matching(pattern: str, origin: str, allowed: bool) -> None:
    assert OriginPattern.parse(pattern).matches(normalize_origin(origin)) is allowed


def _collector(**collector: Any) -> Any:
    return parse_config({"collector": collector}, base_dir=Path("."), env={}, types={})


def test_write_keys_are_bare_keys_or_keys_with_origins() -> None:
    loaded = _collector(write_keys=[
        "server-key",
        {"key": "web-key", "origins": ["https://Shop.example.com/".rstrip("/"),
                                       "https://*.example.org"]},
    ])
    server, web = loaded.config.collector.write_keys
    assert (server.key.get_secret_value(), server.origins) == ("server-key", [])
    assert web.origins == ["https://shop.example.com", "https://*.example.org"]
    assert loaded.warnings == []


def test_origin_problems_are_named_by_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        _collector(write_keys=["ok", {"key": "web", "origins": ["https://ok.test", "shop.test"]},
                               {"key": "any", "origins": ["*"], "allow_credentials": True},
                               {"origins": ["https://ok.test"]}],
                   public_url="collect.example.com")
    assert caught.value.problems == [
        "collector.write_keys.1.origins.1: 'shop.test' needs a scheme: write "
        "'https://shop.test'",
        "collector.write_keys.2: allow_credentials: never with '*' in origins (a page of any "
        "site could send with its visitors' cookies); list the origins",
        "collector.write_keys.3.key: is required",
        "collector.public_url: must be an http:// or https:// URL without query, e.g. "
        "'https://collect.example.com'",
    ]


def test_validate_warns_about_a_key_any_site_may_use(tmp_path: Path) -> None:
    config = tmp_path / "crossdock.yaml"
    config.write_text(yaml.safe_dump({"collector": {"write_keys": [
        "server", {"key": "web", "origins": ["https://shop.example.com"]},
        {"key": "anyone", "origins": ["https://shop.example.com", "*"]}]}}))
    result = CliRunner().invoke(cli, ["validate", "-c", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 1
    assert ("warning: collector.write_keys.2.origins: '*' lets a page on any site send with "
            "this key; in production list your sites' origins") in " ".join(result.stderr.split())
