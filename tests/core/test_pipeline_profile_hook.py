"""The pipeline's profile hook and its watchers, as `build_pipeline` wires them: the profile
store stays the pipeline's hook when audiences watch it, so what reads the store (the
collector's user API and /metrics) still finds it."""

from __future__ import annotations

from pathlib import Path

import httpx
from collector_helpers import WRITE_KEY, basic, serve_app

from crossdock.audiences.sync import AudienceWatch
from crossdock.collector import make_app
from crossdock.loader import parse_config
from crossdock.pipeline import build_pipeline
from crossdock.profiles import ProfileStore
from crossdock.profiles.dictionary import DictionaryWatch

HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}


def test_profile_gauges_stay_on_metrics_when_an_audience_is_configured(tmp_path: Path) -> None:
    loaded = parse_config({
        "outbox": {"url": f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "collector": {"write_keys": [WRITE_KEY]},
        "destinations": {"fb": HOOK},
        "audiences": {"high_value": {"condition": "lifetime_value > 500",
                                     "destinations": ["fb"]}},
    }, base_dir=tmp_path, env={})
    pipeline = build_pipeline(loaded)
    try:
        assert isinstance(pipeline.profiles, ProfileStore)
        assert [type(w) for w in pipeline.watchers] == [DictionaryWatch, AudienceWatch]
        with serve_app(make_app(loaded, pipeline)) as url:
            sent = httpx.post(f"{url}/v1/identify", headers=basic(),
                              json={"userId": "u1", "traits": {"lifetime_value": 700}})
            assert sent.status_code == 200, sent.text
            metrics = httpx.get(f"{url}/metrics").text
        assert 'crossdock_profiles{kind="known"} 1' in metrics
        # The watch ran in the same accept: the person entered the audience.
        entered = pipeline.outbox.row("fb", "audience_entered-1")
        assert entered is not None
        assert entered["payload"]["properties"] == {"audience": "high_value"}
    finally:
        pipeline.close()
