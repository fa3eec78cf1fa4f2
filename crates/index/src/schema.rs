//! The schema and its migrations, keyed by SQLite's `user_version`.
//!
//! Migration `i` (0-based) takes the schema from version `i` to `i + 1`. Each runs in
//! its own transaction with the `user_version` bump, so a crash leaves the old or
//! the new schema. Migrations must stay cheap on an index of millions of rows:
//! `ALTER TABLE … ADD COLUMN` with a constant default and `CREATE INDEX` only;
//! anything that would rewrite every row is done by a rescan instead.

/// Schema version 1.
const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE files (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,
    kind        INTEGER NOT NULL,          -- 0 file, 1 directory, 2 symlink
    target      TEXT,                      -- symlink target
    size        INTEGER NOT NULL,
    mtime_secs  INTEGER NOT NULL,
    mtime_nanos INTEGER NOT NULL,
    mode        INTEGER NOT NULL,
    version     BLOB NOT NULL,             -- (u64be peer, u64be counter)*
    deleted     INTEGER NOT NULL,
    blocks      BLOB NOT NULL,             -- (u32be size, 32-byte hash)*
    hash        BLOB NOT NULL,
    sequence    INTEGER NOT NULL UNIQUE,   -- local sequence of the last change
    body        BLOB,                      -- signed body, verbatim, when signed
    signature   BLOB,
    local_only  INTEGER NOT NULL DEFAULT 0,-- RO peer's own change: never announced
    disk_size   INTEGER,                   -- stat seen when last matched with disk
    disk_mtime_secs  INTEGER,
    disk_mtime_nanos INTEGER,
    disk_inode  INTEGER
);

-- Where each block of a local file lives. Keyed by the first 8 bytes of the hash:
-- half the size of full hashes, and every block is verified before use anyway.
CREATE TABLE blocks (
    hash_prefix INTEGER NOT NULL,
    file_id     INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    offset      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (hash_prefix, file_id, offset)
) WITHOUT ROWID;
CREATE INDEX blocks_by_file ON blocks(file_id);

CREATE TABLE peers (
    peer_id   BLOB PRIMARY KEY,
    index_id  INTEGER NOT NULL,
    sequence  INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Schema version 2: a large file's previous signed body, so that its next
/// record can be sent to peers as a delta from the one they hold (see
/// [`Index::previous`](crate::Index::previous)).
const V2: &str = "
ALTER TABLE files ADD COLUMN prev_sequence INTEGER;   -- sequence of the body below
ALTER TABLE files ADD COLUMN prev_body BLOB;          -- the replaced signed body
";

/// The migrations, in order; the schema version is their count.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
