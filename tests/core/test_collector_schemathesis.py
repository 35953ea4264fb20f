"""schemathesis generates requests from the collector's own OpenAPI spec: no answer may be a
5xx. In-process over ASGI, against a real SQLite file; bounded to stay well under a minute."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from crossdock.collector import make_app
from crossdock.loader import parse_config
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.profiles import ProfileStore


@pytest.fixture(scope="module")
def collector_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    loaded = parse_config(
        {"outbox": {"url": f"sqlite:///{tmp / 'c.db'}"},
         "collector": {"write_keys": ["wk"], "accounts": {"shop": {"keys": ["sk"]}},
                       "rate_limit_per_minute": 1_000_000}},
        base_dir=tmp, env={}, types={},
    )
    outbox = SQLiteOutbox(tmp / "c.db")
    pipeline = Pipeline(loaded, outbox, ProfileStore(loaded.config.profiles, db=outbox.db))
    yield schemathesis.openapi.from_asgi("/openapi.json", make_app(loaded, pipeline))
    outbox.close()


schema = schemathesis.pytest.from_fixture("collector_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any) -> None:
    path = case.operation.path
    key = "sk" if path.startswith("/v1/accounts/") else "wk"
    if "account" in (case.path_parameters or {}) and case.path_parameters["account"] != "shop":
        # Half the account requests go to the configured account, so bodies reach the models.
        case.path_parameters["account"] = "shop" if len(str(case.body)) % 2 else "x"
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    case.call_and_validate(headers={"Authorization": auth}, checks=[not_a_server_error])
