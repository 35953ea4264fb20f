"""Tools for testing Crossdock and its plugins (docs/testing.md): contract fakes
(`fakescript`, `fakeserver`), routed payloads (`payloads`), sending a plugin's requests
(`exchange`), cassettes, the whole pipeline (`pipeline`), a clock, the demo's types (`demo`),
the pytest plugin's fixtures (`pytest_plugin`) and the conformance suite (`conformance`)."""
