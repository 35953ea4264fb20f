"""Everything that lives in an outbox's database: the outbox's own tables and those of the
stores sharing the database (the dedup window, the profile store, the audiences). On
PostgreSQL the outbox's migrations make them all; on SQLite each store migrates its own.

`upgrade_outbox` is `crossdock db upgrade`, `copy_database` is `crossdock db copy`
(crossdock.outbox.copy, given the stores' tables from here: the outbox knows no store).
"""

from __future__ import annotations

from crossdock.audiences.membership import AUDIENCE_TABLES
from crossdock.config import ProfilesConfig
from crossdock.dedup import Dedup
from crossdock.outbox import Outbox, is_sqlite, open_outbox
from crossdock.outbox.copy import CopyReport, StoreTables, copy_outbox
from crossdock.profiles import PROFILE_TABLES, ProfileStore

#: the stores whose tables `copy_database` copies whole, in this order
STORES: tuple[StoreTables, ...] = (PROFILE_TABLES, AUDIENCE_TABLES)


def upgrade_outbox(url: str, profiles: ProfilesConfig | None = None) -> list[str]:
    """Open the outbox at `url`, applying its migrations (and, on SQLite, those of the
    profile store and dedup window living in the same file); returns the names applied."""
    outbox = open_outbox(url)
    try:
        applied = list(outbox.migrated)
        if is_sqlite(outbox):
            applied += ProfileStore(profiles).migrate(outbox.db)
            applied += Dedup.migrate(outbox.db)
        return applied
    finally:
        outbox.close()


def copy_database(source: Outbox, target: Outbox, *, include_delivered: bool = False,
                  profiles: str = "copy") -> CopyReport:
    """`copy_outbox` with every store of the database (see its `profiles`)."""
    return copy_outbox(source, target, include_delivered=include_delivered, profiles=profiles,
                       stores=STORES, migrate_dedup=Dedup.migrate)
