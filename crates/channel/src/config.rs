//! What a channel needs to know before it starts: who we are and which folders.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keys::{Access, FolderId, FolderKey, FolderSigningKey, PeerId, RoKey, RoMacKey};
use zeroize::Zeroizing;

use crate::srp;
use crate::{ChannelError, MAX_RECORDS_PER_KEY};

/// Default time a handshake may take, from [`crate::Handshake::new`] to established.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default number of records sent under one key before a key update (2^24).
pub const DEFAULT_REKEY_AFTER: u64 = 1 << 24;

/// One folder's key with everything the handshake derives from it, computed once
/// (the SRP verifier costs a modular exponentiation).
///
/// Cheap to clone. `Debug` shows only the folder id and access level.
#[derive(Clone)]
pub struct FolderCredentials(Arc<Inner>);

struct Inner {
    folder_id: FolderId,
    access: Access,
    password: Zeroizing<[u8; 32]>,
    salt: [u8; 32],
    verifier: Vec<u8>,
    signing: Option<FolderSigningKey>,
    ro: Option<(RoKey, RoMacKey)>,
    /// Tests only: claim this level with a made-up proof.
    #[cfg(test)]
    forged_claim: Option<Access>,
}

impl FolderCredentials {
    /// Derives the credentials of `key`.
    pub fn new(key: &FolderKey) -> Self {
        let password = Zeroizing::new(*key.encrypted_secret().srp_password().as_bytes());
        let ro = key.ro_key().map(|ro| {
            let mac = ro.ro_mac_key();
            (ro, mac)
        });
        Self::build(
            key.folder_id(),
            key.access(),
            password,
            key.signing_key(),
            ro,
        )
    }

    fn build(
        folder_id: FolderId,
        access: Access,
        password: Zeroizing<[u8; 32]>,
        signing: Option<FolderSigningKey>,
        ro: Option<(RoKey, RoMacKey)>,
    ) -> Self {
        let salt = srp::salt(&folder_id);
        let verifier = srp::verifier(&folder_id, &salt, password.as_ref());
        Self(Arc::new(Inner {
            folder_id,
            access,
            password,
            salt,
            verifier,
            signing,
            ro,
            #[cfg(test)]
            forged_claim: None,
        }))
    }

    /// The same credentials with another SRP password: a peer that claims this
    /// folder id without its secret. Tests only.
    #[cfg(test)]
    pub(crate) fn with_srp_password(&self, password: [u8; 32]) -> Self {
        let i = &self.0;
        Self::build(
            i.folder_id,
            i.access,
            Zeroizing::new(password),
            i.signing.clone(),
            i.ro.clone(),
        )
    }

    /// The same credentials, but claiming `claim` with a made-up proof: a peer
    /// that lies about its level. Tests only.
    #[cfg(test)]
    pub(crate) fn forging(&self, claim: Access) -> Self {
        let mut c = Self::build(
            self.0.folder_id,
            self.0.access,
            self.0.password.clone(),
            self.0.signing.clone(),
            self.0.ro.clone(),
        );
        if let Some(inner) = Arc::get_mut(&mut c.0) {
            inner.forged_claim = Some(claim);
        }
        c
    }

    #[cfg(test)]
    pub(crate) fn forged_claim(&self) -> Option<Access> {
        self.0.forged_claim
    }

    /// The folder these credentials are for.
    pub fn folder_id(&self) -> FolderId {
        self.0.folder_id
    }

    /// The access level the key grants.
    pub fn access(&self) -> Access {
        self.0.access
    }

    pub(crate) fn password(&self) -> &[u8; 32] {
        &self.0.password
    }

    pub(crate) fn salt(&self) -> &[u8; 32] {
        &self.0.salt
    }

    pub(crate) fn verifier(&self) -> &[u8] {
        &self.0.verifier
    }

    pub(crate) fn signing_key(&self) -> Option<&FolderSigningKey> {
        self.0.signing.as_ref()
    }

    pub(crate) fn ro_keys(&self) -> Option<&(RoKey, RoMacKey)> {
        self.0.ro.as_ref()
    }
}

impl fmt::Debug for FolderCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolderCredentials")
            .field("folder_id", &self.0.folder_id)
            .field("access", &self.0.access)
            .finish_non_exhaustive()
    }
}

/// The configuration of one side of a channel.
///
/// With one folder ([`ChannelConfig::new`]) the hello goes out at once. A listener
/// serving several folders ([`ChannelConfig::serving`]) waits for the peer's hello
/// to pick the folder, then answers; a dialer always knows its folder, so two peers
/// never both wait.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub(crate) peer_id: PeerId,
    pub(crate) folders: Arc<[FolderCredentials]>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) rekey_after: u64,
}

impl ChannelConfig {
    /// A channel for one folder (a dialer, or a listener serving one folder).
    pub fn new(peer_id: PeerId, folder: FolderCredentials) -> Self {
        Self {
            peer_id,
            folders: Arc::from(vec![folder]),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            rekey_after: DEFAULT_REKEY_AFTER,
        }
    }

    /// A listener serving any of `folders`; errors if there are none.
    pub fn serving(peer_id: PeerId, folders: Vec<FolderCredentials>) -> Result<Self, ChannelError> {
        if folders.is_empty() {
            return Err(ChannelError::Config("no folder to serve"));
        }
        Ok(Self {
            folders: Arc::from(folders),
            ..Self::placeholder(peer_id)
        })
    }

    fn placeholder(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            folders: Arc::from(Vec::new()),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            rekey_after: DEFAULT_REKEY_AFTER,
        }
    }

    /// Sets how long the handshake may take.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets after how many records under one key the sender updates its key;
    /// clamped to `2..=MAX_RECORDS_PER_KEY`. Lower it only in tests.
    pub fn with_rekey_after(mut self, records: u64) -> Self {
        self.rekey_after = records.clamp(2, MAX_RECORDS_PER_KEY);
        self
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The folders this side can handshake for.
    pub fn folders(&self) -> &[FolderCredentials] {
        &self.folders
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Records per key before a key update.
    pub fn rekey_after(&self) -> u64 {
        self.rekey_after
    }
}
