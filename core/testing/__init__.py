"""Helpers for testing Crossdock and its plugins: loopback servers for contract fakes."""
