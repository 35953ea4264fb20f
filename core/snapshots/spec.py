"""A snapshot export as the operator writes it (docs/exports.md, "Snapshot exports"):

    exports:
      nightly-profiles:
        destination: warehouse        # a file destination (files, s3, sftp, ftp)
        audience: high_value          # optional: only this audience's members
        attributes: [email, plan]     # optional: these attributes only (default: all)
        consent: true                 # each person's consent, purpose -> granted
        audiences: true               # each person's audience memberships
        mode: changes                 # full (everyone) or changes (changed since the last run)
        schedule: "0 3 * * *"         # optional: a crontab line (UTC) or an interval ("6h")

crossdock.config imports this module (SnapshotConfig): it imports crossdock.config only for
type checking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossdock.audiences.spec import NAME, Schedule, check_schedule, parse_schedule

if TYPE_CHECKING:
    from crossdock.config import ConfiguredDestination


class SnapshotConfig(BaseModel):
    """One snapshot export under `exports:` in crossdock.yaml."""

    model_config = ConfigDict(extra="forbid")

    destination: str = Field(description="the file destination the rows go to")
    audience: str | None = Field(default=None,
                                 description="only this audience's members (default: everyone)")
    attributes: list[str] | None = Field(
        default=None, description="the attributes each row holds (default: all of them)")
    consent: bool = Field(default=True, description="each row holds the person's consent")
    audiences: bool = Field(default=True,
                            description="each row holds the audiences the person is in")
    mode: Literal["full", "changes"] = Field(
        default="full", description="full: every profile; changes: those changed since the "
                                    "last finished run")
    schedule: str | None = Field(
        default=None, description="crontab line ('0 3 * * *', UTC) or interval ('6h')")

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> str | None:
        return check_schedule(value)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one attribute, or leave attributes out (all)")
        if len(set(value)) != len(value):
            raise ValueError("must not name an attribute twice")
        return value

    @property
    def parsed_schedule(self) -> Schedule | None:
        return None if self.schedule is None else parse_schedule(self.schedule)


def snapshot_check(raw: Mapping[str, Any], destinations: Mapping[str, Any],
                   loaded: Sequence[ConfiguredDestination]) -> list[str]:
    """The snapshot exports' check across sections (crossdock.loader.CROSS_CHECKS): names,
    destinations that write files (with columns where the format needs them), audiences."""
    from crossdock.exports import COLUMN_FORMATS, ExportSettings

    windowed = [d.name for d in loaded if d.plugin.window() is not None]
    without_columns = {
        d.name: d.plugin.settings.format for d in loaded
        if isinstance(d.plugin.settings, ExportSettings)
        and d.plugin.settings.format in COLUMN_FORMATS
        and not (d.mapping.get("options") or {}).get("columns")}
    return snapshot_problems(raw.get("exports"), destinations, raw.get("audiences"),
                             windowed, without_columns)


def snapshot_problems(exports: Any, destinations: Mapping[str, Any],
                      audiences: Any, windowed: Sequence[str],
                      without_columns: Mapping[str, str]) -> list[str]:
    """Problems crossing the raw `exports:` mapping with the rest of the config, each by its
    path: a name that is not plain, an unknown destination or one that writes no files
    (`windowed`: the destinations whose plugin declares a window), an unknown audience, and
    a CSV or Parquet destination whose mapping names no columns (`without_columns`: name ->
    format; a profile row has none of the event columns they default to)."""
    if not isinstance(exports, Mapping):
        return []
    problems: list[str] = []
    known = ", ".join(sorted(str(d) for d in destinations)) or "none configured"
    files = ", ".join(sorted(windowed)) or "none configured"
    known_audiences = sorted(audiences) if isinstance(audiences, Mapping) else []
    for name, spec in exports.items():
        prefix = f"exports.{name}"
        if not NAME.match(str(name)):
            problems.append(f"{prefix}: a name is 1-64 letters, digits, _, . or - "
                            "(not starting with . or -)")
        if not isinstance(spec, Mapping):
            continue
        dest = spec.get("destination")
        if isinstance(dest, str):
            if dest not in destinations:
                problems.append(f"{prefix}.destination: unknown destination {dest!r} "
                                f"(known: {known})")
            elif dest not in windowed:
                problems.append(f"{prefix}.destination: {dest!r} does not write files; a "
                                f"snapshot goes to a file destination (files, s3, sftp, ftp; "
                                f"configured: {files})")
            elif dest in without_columns:
                problems.append(f"{prefix}.destination: {dest!r} writes "
                                f"{without_columns[dest]} without columns: "
                                "name them in its mapping.options.columns (profile_id: "
                                "profileId, email: traits.email, ...), or write jsonl")
        audience = spec.get("audience")
        if isinstance(audience, str) and audience not in known_audiences:
            problems.append(f"{prefix}.audience: unknown audience {audience!r} (known: "
                            f"{', '.join(known_audiences) or 'none configured'})")
    return problems
