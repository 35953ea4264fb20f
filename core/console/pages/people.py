"""What the Profiles, Audiences and Dictionary pages share: the pipeline they act through
(the daemon's config and outbox, with the profile store and its watchers, as the CLI builds
it), so an erasure or a sync from the console routes exactly as one from the CLI."""

from __future__ import annotations

from crossdock.console.app import PageContext
from crossdock.pipeline import Pipeline, build_pipeline
from crossdock.profiles.store import ProfileStore


def pipeline_of(ctx: PageContext) -> Pipeline[ProfileStore]:
    """A pipeline on the console's outbox and current config (read again after a reload).
    It does not own the outbox: closing it is not needed."""
    return build_pipeline(ctx.state.loaded, ctx.state.outbox)
