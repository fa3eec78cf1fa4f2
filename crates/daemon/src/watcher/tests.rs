use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;

use notify::event::{DataChange, MetadataKind, RemoveKind, RenameMode};
use tokio::sync::mpsc::error::TryRecvError;

use super::*;

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// The next event within `within`, if any.
fn next_event(rx: &mut mpsc::Receiver<FolderEvent>, within: Duration) -> Option<FolderEvent> {
    let deadline = Instant::now() + within;
    loop {
        match rx.try_recv() {
            Ok(event) => return Some(event),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() >= deadline => return None,
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[test]
fn classifies_closes_renames_and_writes() {
    let close_write = EventKind::Access(AccessKind::Close(AccessMode::Write));
    assert_eq!(classify(&close_write), Some(Change::Finished));
    let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    assert_eq!(classify(&rename), Some(Change::Finished));
    let remove = EventKind::Remove(RemoveKind::File);
    assert_eq!(classify(&remove), Some(Change::Finished));
    let mkdir = EventKind::Create(CreateKind::Folder);
    assert_eq!(classify(&mkdir), Some(Change::Finished));
    let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    assert_eq!(classify(&write), Some(Change::Writing));
    let create = EventKind::Create(CreateKind::File);
    assert_eq!(classify(&create), Some(Change::Writing));
    let chmod = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
    assert_eq!(classify(&chmod), Some(Change::Metadata));
    // Reads (ours, serving blocks or hashing) change nothing.
    for read in [
        AccessKind::Open(AccessMode::Any),
        AccessKind::Read,
        AccessKind::Close(AccessMode::Read),
    ] {
        assert_eq!(classify(&EventKind::Access(read)), None);
    }
}

#[test]
fn maps_paths_to_the_folder() {
    let root = Path::new("/f");
    assert_eq!(relative(root, Path::new("/f/a/b")), Some(Some(rel("a/b"))));
    assert_eq!(relative(root, Path::new("/f")), Some(None));
    assert_eq!(relative(root, Path::new("/f/.sync/index.db")), None);
    assert_eq!(relative(root, Path::new("/other/a")), None);
}

/// Written in chunks with pauses shorter than the quiet period, through one
/// open file: one change, after the close.
#[test]
fn a_file_written_in_chunks_is_one_change_after_the_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (tx, mut rx) = mpsc::channel(16);
    let _watcher = start(root, tx, Duration::from_secs(60)).expect("cannot watch");
    let config = Config::for_platform();
    let pause = config.quiet / 5;

    let mut file = File::create(root.join("slow.bin")).unwrap();
    for chunk in 0u8..5 {
        file.write_all(&[chunk; 4096]).unwrap();
        file.flush().unwrap();
        std::thread::sleep(pause);
        if let Ok(early) = rx.try_recv() {
            panic!("{early:?} before the last write (chunk {chunk})");
        }
    }
    drop(file);

    match next_event(&mut rx, Duration::from_secs(10)) {
        Some(FolderEvent::LocalChange(paths)) => assert_eq!(paths, [rel("slow.bin")]),
        other => panic!("expected one local change, got {other:?}"),
    }
    let more = next_event(&mut rx, config.quiet + Duration::from_millis(500));
    assert!(more.is_none(), "a second event: {more:?}");
}

/// New directories, renames in and out, removals are seen; `.sync/` and our
/// temporaries are not.
#[test]
fn sees_renames_removals_and_directories_but_not_state_or_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("folder");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join(STATE_DIR)).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(root.join("old"), b"x").unwrap();
    std::fs::write(root.join("gone"), b"x").unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let _watcher = start(&root, tx, Duration::from_secs(60)).expect("cannot watch");

    std::fs::write(root.join(STATE_DIR).join("index.db"), b"ours").unwrap();
    let temp = root.join(format!("{}x", record::TEMP_PREFIX));
    std::fs::write(&temp, b"ours").unwrap();
    std::fs::write(outside.join("new"), b"y").unwrap();
    std::fs::rename(outside.join("new"), root.join("new")).unwrap();
    std::fs::rename(root.join("old"), outside.join("old")).unwrap();
    std::fs::remove_file(root.join("gone")).unwrap();
    std::fs::remove_file(&temp).unwrap();
    std::fs::create_dir(root.join("d")).unwrap();

    let want: BTreeSet<RelPath> = ["new", "old", "gone", "d"].map(rel).into();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_event(&mut rx, left) {
            Some(FolderEvent::LocalChange(paths)) => seen.extend(paths),
            other => panic!("expected local changes, got {other:?} (seen {seen:?})"),
        }
    }
    assert_eq!(seen, want);
}

#[test]
fn the_queue_holds_at_most_queue_inputs_and_room_comes_back_as_they_are_taken() {
    let (queue, inputs) = queue();
    let now = Instant::now();
    for _ in 0..QUEUE {
        assert!(queue.try_send(Input::Rescan(now)));
    }
    assert!(!queue.try_send(Input::Rescan(now)), "full");
    assert_eq!(queue.queued.load(Ordering::SeqCst), QUEUE);
    assert!(inputs.recv(None).is_ok());
    assert!(queue.try_send(Input::Rescan(now)));
    assert!(!queue.try_send(Input::Rescan(now)));
    assert!(inputs.try_recv().is_some());
    assert!(inputs.recv(Some(now)).is_ok());
    assert_eq!(queue.queued.load(Ordering::SeqCst), QUEUE - 2);
    while inputs.try_recv().is_some() {}
    assert_eq!(queue.queued.load(Ordering::SeqCst), 0);
    assert!(matches!(
        inputs.recv(Some(Instant::now())),
        Err(RecvTimeoutError::Timeout)
    ));
    drop(inputs);
    assert!(!queue.try_send(Input::Rescan(now)), "our thread is gone");
}
