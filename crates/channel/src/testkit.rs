//! Sessions without a handshake, for tests and fuzzing: fixed traffic secrets,
//! no SRP, so thousands of cases stay cheap.

use keys::{Access, FolderId, PeerId};
use zeroize::Zeroizing;

use crate::proof::PeerAccess;
use crate::record::{Direction, Receiver, Sender};
use crate::session::{Session, SessionInfo};
use crate::{ChannelError, Role};

/// Two sessions wired to each other (a's sending secret is b's receiving one),
/// both past the access proofs; `rekey_after` as in the config.
#[allow(unreachable_pub)] // public through `fuzzing`
pub fn session_pair(rekey_after: u64) -> Result<(Session, Session), ChannelError> {
    let info = |role, peer| SessionInfo {
        peer_id: PeerId([peer; 32]),
        folder_id: FolderId([0xF0; 20]),
        version: 1,
        role,
        local_access: Access::Encrypted,
        peer_access: PeerAccess {
            verified: Access::Encrypted,
            claimed: Access::Encrypted,
        },
        transcript_hash: [0x77; 32],
    };
    let dir = |b: u8| Direction::new(Zeroizing::new([b; 32]));
    let a = Session::new(
        info(Role::Client, 2),
        Sender::new(dir(1)?, rekey_after),
        Receiver::new_open(dir(2)?),
        Vec::new(),
    );
    let b = Session::new(
        info(Role::Server, 1),
        Sender::new(dir(2)?, rekey_after),
        Receiver::new_open(dir(1)?),
        Vec::new(),
    );
    Ok((a, b))
}
