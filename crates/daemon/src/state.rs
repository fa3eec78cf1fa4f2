//! The state directory of one folder: its secret and this device's identity.
//!
//! Layout (DESIGN.md §8), by default `DIR/.sync/`, which is never synced:
//!
//! ```text
//! secret     the folder key as text (A…, B… or D…), mode 0600
//! peer-id    this device's peer id, Base32
//! index.db   the SQLite index (crate `index`)
//! ```
//!
//! Files are written to a temporary name, fsynced and renamed, so a crash leaves
//! the old file or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use keys::{Access, FolderId, FolderKey, PeerId};

/// The name of the state directory inside a synced folder.
pub const STATE_DIR_NAME: &str = ".sync";
const SECRET_FILE: &str = "secret";
const PEER_ID_FILE: &str = "peer-id";
const INDEX_FILE: &str = "index.db";

/// What went wrong opening or creating a state directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The folder path exists but is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The stored secret does not parse.
    #[error(
        "the stored secret in {path} is damaged ({source}); restore it from another device with `--secret`"
    )]
    CorruptSecret {
        /// The secret file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: keys::KeyError,
    },
    /// The stored peer id does not parse.
    #[error("the peer id in {0} is damaged; delete the file and a new id will be made")]
    CorruptPeerId(PathBuf),
    /// The folder was set up with a secret of another folder.
    #[error(
        "this folder is already synced with another secret (folder id {stored}, the given key is for {given}); \
         use a new folder, or remove {path} to start over"
    )]
    SecretMismatch {
        /// The folder id of the stored key.
        stored: FolderId,
        /// The folder id of the given key.
        given: FolderId,
        /// The secret file.
        path: PathBuf,
    },
    /// A key of lower access than the stored one was given for the same folder.
    #[error(
        "this folder already holds a {stored} key; the given {given} key would lower its access"
    )]
    Downgrade {
        /// Access of the stored key.
        stored: Access,
        /// Access of the given key.
        given: Access,
    },
    /// No secret is stored and none was given, where one is needed.
    #[error("{0} holds no folder secret yet: run `swarmsync sync` on it first, or pass --secret")]
    NoSecret(PathBuf),
}

/// How the secret came to be, so the caller can tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    /// Read from the state directory.
    Stored,
    /// Given by the user and stored now.
    Given,
    /// Given by the user for the same folder with more access; replaced the stored one.
    Upgraded,
    /// Made now: a new read-write secret.
    Created,
}

/// An opened state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    key: FolderKey,
    peer_id: PeerId,
}

impl StateDir {
    /// The default state directory of a folder.
    pub fn default_for(folder: &Path) -> PathBuf {
        folder.join(STATE_DIR_NAME)
    }

    /// Opens `path`, creating it and what is missing.
    ///
    /// With no stored secret, `given` is stored, or else a new read-write secret is
    /// made. With a stored secret, `given` must be for the same folder; a key with
    /// more access replaces the stored one.
    pub fn open_or_create(
        path: &Path,
        given: Option<FolderKey>,
    ) -> Result<(Self, SecretOrigin), StateError> {
        create_dir(path)?;
        let secret_path = path.join(SECRET_FILE);
        let (key, origin) = match (read_secret(&secret_path)?, given) {
            (Some(stored), None) => (stored, SecretOrigin::Stored),
            (Some(stored), Some(given)) => {
                if stored.folder_id() != given.folder_id() {
                    return Err(StateError::SecretMismatch {
                        stored: stored.folder_id(),
                        given: given.folder_id(),
                        path: secret_path,
                    });
                }
                match given.access().cmp(&stored.access()) {
                    std::cmp::Ordering::Equal => (stored, SecretOrigin::Stored),
                    std::cmp::Ordering::Less => {
                        return Err(StateError::Downgrade {
                            stored: stored.access(),
                            given: given.access(),
                        });
                    }
                    std::cmp::Ordering::Greater => {
                        write_private(&secret_path, given.to_string().as_bytes())?;
                        (given, SecretOrigin::Upgraded)
                    }
                }
            }
            (None, Some(given)) => {
                write_private(&secret_path, given.to_string().as_bytes())?;
                (given, SecretOrigin::Given)
            }
            (None, None) => {
                let rw = keys::RwSecret::generate().map_err(|e| StateError::Io {
                    action: "generating a secret for",
                    path: secret_path.clone(),
                    source: io::Error::other(e),
                })?;
                let key = FolderKey::ReadWrite(rw);
                write_private(&secret_path, key.to_string().as_bytes())?;
                (key, SecretOrigin::Created)
            }
        };
        let peer_id = load_or_create_peer_id(&path.join(PEER_ID_FILE))?;
        Ok((
            Self {
                path: path.to_owned(),
                key,
                peer_id,
            },
            origin,
        ))
    }

    /// Opens an existing state directory without creating anything.
    pub fn open_existing(path: &Path) -> Result<Self, StateError> {
        let secret_path = path.join(SECRET_FILE);
        let key =
            read_secret(&secret_path)?.ok_or_else(|| StateError::NoSecret(path.to_owned()))?;
        let peer_id = load_or_create_peer_id(&path.join(PEER_ID_FILE))?;
        Ok(Self {
            path: path.to_owned(),
            key,
            peer_id,
        })
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder key.
    pub fn key(&self) -> &FolderKey {
        &self.key
    }

    /// This device's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Where the index database lives.
    pub fn index_path(&self) -> PathBuf {
        self.path.join(INDEX_FILE)
    }
}

fn create_dir(path: &Path) -> Result<(), StateError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StateError::NotADirectory(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(|source| StateError::Io {
                action: "creating",
                path: path.to_owned(),
                source,
            })
        }
        Err(source) => Err(StateError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_secret(path: &Path) -> Result<Option<FolderKey>, StateError> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .map(Some)
            .map_err(|source| StateError::CorruptSecret {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

fn load_or_create_peer_id(path: &Path) -> Result<PeerId, StateError> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .map_err(|_| StateError::CorruptPeerId(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = PeerId::generate().map_err(|e| StateError::Io {
                action: "generating a peer id for",
                path: path.to_owned(),
                source: io::Error::other(e),
            })?;
            write_private(path, id.to_string().as_bytes())?;
            Ok(id)
        }
        Err(source) => Err(StateError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `contents` + newline to `path` atomically, readable by the owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    let io_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    };
    let tmp = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(contents)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming into place", path))?;
    if let Some(dir) = path.parent() {
        // The rename is durable only once the directory is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::RwSecret;

    fn rw(seed: u8) -> FolderKey {
        FolderKey::ReadWrite(RwSecret::from_bytes([seed; 20]))
    }

    #[test]
    fn first_open_creates_a_rw_secret_and_later_opens_reuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".sync");
        let (first, origin) = StateDir::open_or_create(&state, None).unwrap();
        assert_eq!(origin, SecretOrigin::Created);
        assert_eq!(first.key().access(), Access::ReadWrite);
        let (second, origin) = StateDir::open_or_create(&state, None).unwrap();
        assert_eq!(origin, SecretOrigin::Stored);
        assert_eq!(second.key(), first.key());
        assert_eq!(second.peer_id(), first.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn another_folders_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        StateDir::open_or_create(dir.path(), Some(rw(1))).unwrap();
        let err = StateDir::open_or_create(dir.path(), Some(rw(2))).unwrap_err();
        assert!(matches!(err, StateError::SecretMismatch { .. }), "{err}");
        // The stored secret is untouched.
        let (state, _) = StateDir::open_or_create(dir.path(), None).unwrap();
        assert_eq!(state.key(), &rw(1));
    }

    #[test]
    fn more_access_upgrades_and_less_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let full = rw(3);
        let ro = FolderKey::ReadOnly(full.ro_key().unwrap());
        let (_, origin) = StateDir::open_or_create(dir.path(), Some(ro.clone())).unwrap();
        assert_eq!(origin, SecretOrigin::Given);
        let (state, origin) = StateDir::open_or_create(dir.path(), Some(full.clone())).unwrap();
        assert_eq!(origin, SecretOrigin::Upgraded);
        assert_eq!(state.key(), &full);
        let err = StateDir::open_or_create(dir.path(), Some(ro)).unwrap_err();
        assert!(matches!(err, StateError::Downgrade { .. }), "{err}");
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SECRET_FILE), "Anot a key").unwrap();
        let err = StateDir::open_or_create(dir.path(), None).unwrap_err();
        assert!(matches!(err, StateError::CorruptSecret { .. }), "{err}");
        fs::write(dir.path().join(SECRET_FILE), rw(4).to_string()).unwrap();
        fs::write(dir.path().join(PEER_ID_FILE), "garbage").unwrap();
        let err = StateDir::open_or_create(dir.path(), None).unwrap_err();
        assert!(matches!(err, StateError::CorruptPeerId(_)), "{err}");
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = StateDir::open_or_create(&file, None).unwrap_err();
        assert!(matches!(err, StateError::NotADirectory(_)), "{err}");
        let err = StateDir::open_existing(&dir.path().join("none")).unwrap_err();
        assert!(matches!(err, StateError::NoSecret(_)), "{err}");
    }
}
