"""Tables of the profile store, in the outbox's SQLite file (names start with `profile`).
Their PostgreSQL twin is the outbox migration `pg_004_profiles` (crossdock.outbox.pg_schema):
change both together, each with a new migration.

Applied through crossdock.outbox.migrations.apply_migrations with their own names, so the
outbox's `crossdock db upgrade` and the profile store never step on each other.
"""

from __future__ import annotations

from sqlite_utils import Database

from crossdock.outbox.migrations import Migration, apply_migrations

PROFILE_MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    PROFILE_MIGRATIONS.append(fn)
    return fn


def upgrade_profiles(db: Database) -> list[str]:
    """Create or upgrade the profile tables; returns the names of migrations applied now."""
    return apply_migrations(db, PROFILE_MIGRATIONS)


@_migration
def profiles_m001_initial(db: Database) -> None:
    # merged_into keeps a merged-away profile's id resolvable (old ids in logs, CLI lookups).
    db.execute(
        """
        CREATE TABLE profiles (
            id TEXT PRIMARY KEY,
            user_id TEXT UNIQUE,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            merged_into TEXT,
            message_count INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    # One owner per identity (type, value): anonymousId, userId, email.
    db.execute(
        """
        CREATE TABLE profile_identities (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (type, value)
        )
        """
    )
    db.execute("CREATE INDEX profile_identities_profile ON profile_identities (profile_id)")
    for table in ("profile_system_attributes", "profile_custom_attributes"):
        db.execute(
            f"""
            CREATE TABLE {table} (
                profile_id TEXT NOT NULL,
                name TEXT NOT NULL,
                type TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (profile_id, name)
            )
            """
        )
    db.execute(
        """
        CREATE TABLE profile_consent (
            profile_id TEXT NOT NULL,
            purpose TEXT NOT NULL,
            granted INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (profile_id, purpose)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE profile_sessions (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            last_seen_at REAL NOT NULL,
            ended_at REAL,
            message_count INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX profile_sessions_open ON profile_sessions (ended_at, last_seen_at)")
    db.execute("CREATE INDEX profile_sessions_sid ON profile_sessions (session_id, ended_at)")
    db.execute("CREATE INDEX profile_sessions_profile ON profile_sessions (profile_id)")
    db.execute(
        """
        CREATE TABLE profile_merges (
            id INTEGER PRIMARY KEY,
            from_profile TEXT NOT NULL,
            into_profile TEXT NOT NULL,
            reason TEXT NOT NULL,
            merged_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE profile_rejections (
            id INTEGER PRIMARY KEY,
            profile_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            attribute TEXT NOT NULL,
            rule TEXT NOT NULL,
            detail TEXT NOT NULL,
            at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX profile_rejections_profile ON profile_rejections (profile_id)")
    # Counts that outlive deleted profiles, for /metrics.
    db.execute(
        "CREATE TABLE profile_stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0)"
    )


@_migration
def profiles_m002_attribute_definitions(db: Database) -> None:
    # One definition per attribute for the whole account, like a data dictionary: the type
    # its first datapoint fixed, when, and how many datapoints of another type were rejected.
    # The 25-per-type cap counts these (custom part). Twin: pg_009_attribute_definitions.
    db.execute(
        """
        CREATE TABLE profile_attribute_definitions (
            part TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            first_seen REAL NOT NULL,
            rejected INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (part, name)
        )
        """
    )
    db.execute("CREATE INDEX profile_attribute_definitions_type "
               "ON profile_attribute_definitions (part, type)")
    # Each name's type is that of its earliest-written value.
    for part, table in (("system", "profile_system_attributes"),
                        ("custom", "profile_custom_attributes")):
        db.execute(
            f"INSERT INTO profile_attribute_definitions (part, name, type, first_seen) "
            f"SELECT '{part}', a.name, MIN(a.type), MIN(a.updated_at) FROM {table} a "
            f"WHERE a.updated_at = (SELECT MIN(b.updated_at) FROM {table} b "
            "WHERE b.name = a.name) GROUP BY a.name ON CONFLICT (part, name) DO NOTHING")


@_migration
def profiles_m003_dictionary(db: Database) -> None:
    # The data dictionary (crossdock.profiles.dictionary): datapoints of each event name,
    # event property and user attribute per (observed type, UTC day), and the rejected
    # datapoints per (attribute, rule, day). Added to once per accept call, in its
    # transaction. Twin: pg_017_dictionary.
    db.execute(
        """
        CREATE TABLE profile_dictionary (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            day TEXT NOT NULL,
            datapoints INTEGER NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (kind, name, type, day)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE profile_dictionary_rejections (
            name TEXT NOT NULL,
            rule TEXT NOT NULL,
            day TEXT NOT NULL,
            datapoints INTEGER NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (name, rule, day)
        )
        """
    )


@_migration
def profiles_m004_merged_into(db: Database) -> None:
    # A merge repoints the profiles merged into its source (`UPDATE profiles SET merged_into
    # = ? WHERE merged_into = ?`, crossdock.profiles.batch): without this index every merge
    # read the whole profiles table. Partial, as its twin in pg_004_profiles: only merged
    # profiles have a value.
    db.execute("CREATE INDEX IF NOT EXISTS profiles_merged_into ON profiles (merged_into) "
               "WHERE merged_into IS NOT NULL")
