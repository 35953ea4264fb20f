"""Snapshot exports: the profile store, or an audience, as rows of a file destination
(docs/exports.md)."""
