//! `swarmsync key new` and `swarmsync key info`.

use keys::{FolderKey, RwSecret};
use serde::Serialize;

use crate::exit::{Failure, ResultExt};

/// What a key grants, as printed: the key itself and what it derives, never a key
/// above it.
#[derive(Debug, Serialize)]
pub(crate) struct KeyReport {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_write: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_only: Option<String>,
    encrypted: String,
    folder_id: String,
}

impl KeyReport {
    pub(crate) fn of(key: &FolderKey) -> Self {
        Self {
            kind: key.access().name(),
            read_write: matches!(key, FolderKey::ReadWrite(_)).then(|| key.to_string()),
            read_only: key.ro_key().map(|ro| ro.to_string()),
            encrypted: key.encrypted_secret().to_string(),
            folder_id: key.folder_id().to_string(),
        }
    }

    pub(crate) fn print(&self, json: bool) -> Result<(), Failure> {
        if json {
            let text = serde_json::to_string_pretty(self).runtime()?;
            println!("{text}");
            return Ok(());
        }
        println!("kind:        {}", self.kind);
        if let Some(rw) = &self.read_write {
            println!("read-write:  {rw}");
        }
        if let Some(ro) = &self.read_only {
            println!("read-only:   {ro}");
        }
        println!("encrypted:   {}", self.encrypted);
        println!("folder id:   {}", self.folder_id);
        Ok(())
    }
}

pub(crate) fn new(json: bool) -> Result<(), Failure> {
    let key = FolderKey::ReadWrite(RwSecret::generate().runtime()?);
    KeyReport::of(&key).print(json)?;
    if !json {
        eprintln!(
            "\nShare the read-write key with your own devices, the read-only key with \
             people who may only read, the encrypted key with storage you do not trust."
        );
    }
    Ok(())
}

pub(crate) fn info(text: &str, json: bool) -> Result<(), Failure> {
    let key: FolderKey = text.parse().bad_input()?;
    KeyReport::of(&key).print(json)
}
