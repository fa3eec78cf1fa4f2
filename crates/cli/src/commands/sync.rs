//! `swarmsync sync DIR`.

use std::fs;
use std::path::Path;

use anyhow::Context;
use daemon::SyncOptions;
use daemon::state::{SecretOrigin, StateDir, StateError};
use keys::FolderKey;

use crate::args::SyncArgs;
use crate::exit::{Failure, ResultExt};

pub(crate) fn run(args: &SyncArgs) -> Result<(), Failure> {
    // Before any thread starts: a daemon's threads pass buffers to one another
    // (an arena per thread kept megabytes of partly used memory), and blocks
    // freed should be reused, not faulted in again.
    malloc_tune::tune();
    let given: Option<FolderKey> = args
        .secret
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--secret")
        .bad_input()?;
    let state = open_folder(&args.dir, args.state.as_deref(), given)?;
    let root = fs::canonicalize(&args.dir)
        .with_context(|| format!("resolving {}", args.dir.display()))
        .runtime()?;
    let mut options = SyncOptions::new(root);
    if let Some(listen) = args.listen {
        options.net.listen = listen;
    }
    options.net.known_hosts.clone_from(&args.known_hosts);
    options.net.lan = !args.no_lan;
    options.net.tracker = !args.no_tracker;
    options.net.trackers.clone_from(&args.trackers);
    options.net.dht = !args.no_dht;
    options.net.dht_bootstrap.clone_from(&args.dht_bootstrap);
    options.net.dht_server = args.dht_server;
    options.net.pex = !args.no_pex;
    options.net.upnp = !args.no_upnp;
    options.net.relay = !args.no_relay;
    options.net.relays.clone_from(&args.relays);
    options.net.state_dir = Some(state.path().to_owned());
    options.archive_keep = std::time::Duration::from_secs(u64::from(args.archive_days) * 86_400);
    eprintln!(
        "Syncing {} (folder {}, {} key). Stop with Ctrl-C.",
        args.dir.display(),
        state.key().folder_id(),
        state.key().access()
    );
    let _progress = super::progress::Progress::start(options.status.clone());
    daemon::run(options, &state, stop_signal()).map_err(|e| {
        if e.is_bad_input() {
            Failure::BadInput(e.into())
        } else {
            Failure::Runtime(e.into())
        }
    })
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("stopping");
}

/// Creates `dir` if needed and opens its state, telling the user about a new or
/// changed secret.
pub(crate) fn open_folder(
    dir: &Path,
    state: Option<&Path>,
    given: Option<FolderKey>,
) -> Result<StateDir, Failure> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Failure::BadInput(anyhow::anyhow!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .runtime()?,
    }
    let state_path = state.map_or_else(|| StateDir::default_for(dir), Path::to_owned);
    let (state, origin) = StateDir::open_or_create(&state_path, given).map_err(|e| match e {
        StateError::SecretMismatch { .. }
        | StateError::Downgrade { .. }
        | StateError::NotADirectory(_) => Failure::BadInput(e.into()),
        _ => Failure::Runtime(e.into()),
    })?;
    match origin {
        SecretOrigin::Created => {
            let key = state.key();
            println!("Created a new folder secret for {}.", dir.display());
            println!("read-write:  {key}   (share only with your own devices)");
            if let Some(ro) = key.ro_key() {
                println!("read-only:   {ro}   (for those who may only read)");
            }
            println!(
                "It is stored in {}; later runs need no --secret.",
                state.path().display()
            );
        }
        SecretOrigin::Upgraded => {
            eprintln!("note: the folder now holds a {} key", state.key().access());
        }
        SecretOrigin::Given | SecretOrigin::Stored => {}
    }
    Ok(state)
}
