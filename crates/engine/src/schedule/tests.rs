use super::*;
use record::{Block, FileKind, Timestamp, VersionVector};

fn peer(n: u8) -> PeerId {
    PeerId([n; 32])
}

fn path(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// A file of `n` blocks of 1 KiB; block i hashes to [seed, i].
fn file(name: &str, n: usize, seed: u8) -> FileRecord {
    let blocks: Vec<Block> = (0..n)
        .map(|i| {
            let mut hash = [seed; 32];
            hash[1] = i as u8;
            Block { size: 1024, hash }
        })
        .collect();
    FileRecord {
        path: path(name),
        kind: FileKind::File,
        size: 1024 * n as u64,
        modified: Timestamp::default(),
        mode: 0o644,
        version: VersionVector::new(),
        deleted: false,
        blocks,
        hash: [seed; 32],
    }
}

fn config() -> ScheduleConfig {
    ScheduleConfig {
        min_pipeline: 2,
        min_pipeline_bytes: 0,
        pipeline_time: Duration::ZERO,
        ..ScheduleConfig::default()
    }
}

fn drain(s: &mut Scheduler, now: Instant) -> Vec<Request> {
    std::iter::from_fn(|| s.poll_request(now)).collect()
}

#[test]
fn nothing_is_asked_of_a_peer_that_lacks_the_version() {
    let mut s = Scheduler::new(config());
    let f = file("a", 4, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    assert!(s.poll_request(Instant::now()).is_none());
    s.peer_has_file(&peer(1), &f.path, [9; 32]); // another version
    assert!(s.poll_request(Instant::now()).is_none());
    s.peer_has_file(&peer(1), &f.path, f.hash);
    assert!(s.poll_request(Instant::now()).is_some());
}

#[test]
fn pipeline_per_peer_is_bounded_and_refills() {
    let mut s = Scheduler::new(config());
    let f = file("a", 10, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let now = Instant::now();
    let first = drain(&mut s, now);
    assert_eq!(
        first.len(),
        2,
        "min_pipeline requests with no rate known yet"
    );
    assert_eq!((first[0].index, first[0].offset), (0, 0));
    assert_eq!((first[1].index, first[1].offset), (1, 1024));
    assert_eq!(
        s.handle_block(&peer(1), &f.path, f.hash, 0, now),
        Arrival::Accepted
    );
    let next = drain(&mut s, now);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].index, 2);
}

#[test]
fn blocks_spread_over_every_peer_that_has_them() {
    let mut s = Scheduler::new(config());
    let f = file("big", 30, 1);
    s.add_file(f.clone());
    for n in 1..=3 {
        s.peer_connected(peer(n));
        s.peer_has_file(&peer(n), &f.path, f.hash);
    }
    let requests = drain(&mut s, Instant::now());
    assert_eq!(requests.len(), 6);
    for n in 1..=3 {
        assert_eq!(requests.iter().filter(|r| r.peer == peer(n)).count(), 2);
    }
    let mut indexes: Vec<usize> = requests.iter().map(|r| r.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 6, "no block asked twice outside the endgame");
}

#[test]
fn rarest_block_first() {
    let mut s = Scheduler::new(config());
    let f = file("a", 4, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_connected(peer(2));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    // Peer 2 is still downloading: it has blocks 0 and 3 only.
    s.peer_has_blocks(&peer(2), &f.path, f.hash, vec![true, false, false, true]);
    let now = Instant::now();
    // Peer 1 has the most room ties broken by id: it asks first, for a block only it has.
    let r = s.poll_request(now).unwrap();
    assert_eq!((r.peer, r.index), (peer(1), 1));
    let r = s.poll_request(now).unwrap();
    assert_eq!(r.peer, peer(2));
    assert!(r.index == 0 || r.index == 3);
}

#[test]
fn late_peer_takes_its_share_at_once() {
    let mut s = Scheduler::new(config());
    let f = file("a", 8, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let now = Instant::now();
    assert_eq!(drain(&mut s, now).len(), 2);
    s.peer_connected(peer(2));
    s.peer_has_file(&peer(2), &f.path, f.hash);
    let late = drain(&mut s, now);
    assert_eq!(late.len(), 2);
    assert!(late.iter().all(|r| r.peer == peer(2)));
}

#[test]
fn endgame_asks_a_second_peer_and_the_first_copy_wins() {
    let mut s = Scheduler::new(config());
    let f = file("a", 1, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let now = Instant::now();
    let first = drain(&mut s, now);
    assert_eq!(first.len(), 1);
    s.peer_connected(peer(2));
    s.peer_has_file(&peer(2), &f.path, f.hash);
    let dup = drain(&mut s, now);
    assert_eq!(dup.len(), 1, "one duplicate, no more");
    assert_eq!((dup[0].peer, dup[0].index), (peer(2), 0));
    assert_eq!(
        s.handle_block(&peer(2), &f.path, f.hash, 0, now),
        Arrival::Accepted
    );
    assert_eq!(
        s.handle_block(&peer(1), &f.path, f.hash, 0, now),
        Arrival::Unneeded
    );
    assert_eq!(s.poll_complete(), Some(f.path.clone()));
    assert_eq!(s.poll_complete(), None, "reported once");
}

#[test]
fn disconnect_timeout_and_bad_block_requeue() {
    let mut s = Scheduler::new(ScheduleConfig {
        request_timeout: Duration::from_secs(5),
        ..config()
    });
    let f = file("a", 2, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_connected(peer(2));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let t0 = Instant::now();
    let r = drain(&mut s, t0);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.peer == peer(1)));
    // Peer 1 leaves: peer 2 (which got the file meanwhile) is asked for both.
    s.peer_has_file(&peer(2), &f.path, f.hash);
    s.peer_disconnected(&peer(1));
    let r = drain(&mut s, t0);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.peer == peer(2)));
    // Peer 2 stalls: after the timeout the blocks are free again.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    s.handle_timeout(t0 + Duration::from_secs(6));
    let r = drain(&mut s, t0 + Duration::from_secs(6));
    assert_eq!(r.len(), 2, "asked again");
    // A corrupt block: peer 2 is no longer counted on for this version.
    s.handle_bad_block(&peer(2), &f.path, f.hash, 0);
    assert_eq!(s.sources(&f.path), Vec::<PeerId>::new());
    assert!(s.poll_request(t0).is_none());
}

#[test]
fn local_blocks_are_not_fetched_and_progress_counts_the_rest() {
    let mut s = Scheduler::new(config());
    let f = file("a", 3, 1);
    s.add_file(f.clone());
    s.mark_local(&f.path, 0);
    s.mark_local(&f.path, 2);
    assert_eq!(
        s.progress(),
        Progress {
            files: 1,
            bytes: 1024
        }
    );
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let r = drain(&mut s, Instant::now());
    assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1]);
    s.handle_block(&peer(1), &f.path, f.hash, 1, Instant::now());
    assert_eq!(s.progress(), Progress::default());
    assert_eq!(s.poll_complete(), Some(f.path.clone()));
    // An empty file is complete at once.
    s.add_file(file("empty", 0, 2));
    assert_eq!(s.poll_complete(), Some(path("empty")));
}

#[test]
fn replaced_version_forgets_old_requests() {
    let mut s = Scheduler::new(config());
    let old = file("a", 2, 1);
    s.add_file(old.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &old.path, old.hash);
    let now = Instant::now();
    assert_eq!(drain(&mut s, now).len(), 2);
    let new = file("a", 2, 2);
    s.add_file(new.clone());
    assert_eq!(
        s.handle_block(&peer(1), &old.path, old.hash, 0, now),
        Arrival::Unneeded
    );
    s.peer_has_file(&peer(1), &new.path, new.hash);
    let r = drain(&mut s, now);
    assert_eq!(r.len(), 2, "the old requests no longer fill the pipeline");
    assert!(r.iter().all(|r| r.file_hash == new.hash));
}

#[test]
fn files_finish_in_order_within_the_window() {
    let mut s = Scheduler::new(ScheduleConfig {
        active_files: 1,
        min_pipeline: 3,
        ..config()
    });
    let a = file("a", 2, 1);
    let b = file("b", 2, 2);
    s.add_file(a.clone());
    s.add_file(b.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &a.path, a.hash);
    s.peer_has_file(&peer(1), &b.path, b.hash);
    let r = drain(&mut s, Instant::now());
    let names: Vec<&str> = r.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        names,
        vec!["a", "a", "b"],
        "b starts only when a is fully requested"
    );
}

#[test]
fn small_blocks_fill_the_least_pipeline_in_bytes_before_a_rate_is_known() {
    let mut s = Scheduler::new(ScheduleConfig {
        min_pipeline_bytes: 8 * 1024,
        ..config()
    });
    let f = file("a", 20, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let now = Instant::now();
    assert_eq!(
        drain(&mut s, now).len(),
        8,
        "8 KiB of 1 KiB blocks, not 2 requests"
    );
    assert_eq!(
        s.handle_block(&peer(1), &f.path, f.hash, 0, now),
        Arrival::Accepted
    );
    assert_eq!(drain(&mut s, now).len(), 1, "refilled to 8 KiB");
}

#[test]
fn a_fast_peer_gets_a_deeper_pipeline() {
    let cfg = ScheduleConfig {
        min_pipeline: 1,
        min_pipeline_bytes: 0,
        pipeline_time: Duration::from_secs(1),
        ..ScheduleConfig::default()
    };
    let mut s = Scheduler::new(cfg);
    let f = file("a", 250, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let t0 = Instant::now();
    let mut now = t0;
    // Deliver 1 KiB every millisecond for a while: about 1 MB/s.
    let mut outstanding: Vec<Request> = drain(&mut s, now);
    for _ in 0..220 {
        now += Duration::from_millis(1);
        if let Some(r) = outstanding.pop() {
            s.handle_block(&peer(1), &r.path, r.file_hash, r.index, now);
        }
        outstanding.extend(drain(&mut s, now));
    }
    assert!(
        outstanding.len() > 5,
        "pipeline grew to {}",
        outstanding.len()
    );
}

#[test]
fn a_busy_peer_is_asked_again_and_still_counts_as_a_source() {
    let mut s = Scheduler::new(config());
    let f = file("a", 1, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let now = Instant::now();
    assert_eq!(drain(&mut s, now).len(), 1);
    s.handle_refused(&peer(1), &f.path, f.hash, 0);
    assert_eq!(s.sources(&f.path), vec![peer(1)]);
    let again = drain(&mut s, now);
    assert_eq!(again.len(), 1, "asked again");
    assert_eq!(again[0].peer, peer(1));
}

#[test]
fn files_are_reported_complete_once_each_in_the_order_they_completed() {
    let mut s = Scheduler::new(config());
    let (a, b, c) = (file("a", 2, 1), file("b", 1, 2), file("c", 1, 3));
    for f in [&a, &b, &c] {
        s.add_file(f.clone());
    }
    s.mark_local(&c.path, 0);
    s.mark_local(&a.path, 0);
    s.mark_local(&a.path, 0); // again: no second report
    s.mark_local(&a.path, 1);
    // b completed and was then replaced by another version: not reported.
    s.mark_local(&b.path, 0);
    s.add_file(file("b", 1, 4));
    assert_eq!(s.poll_complete(), Some(c.path.clone()));
    assert_eq!(s.poll_complete(), Some(a.path.clone()));
    assert_eq!(s.poll_complete(), None);
    s.mark_local(&b.path, 0);
    assert_eq!(s.poll_complete(), Some(b.path.clone()));
    assert_eq!(s.poll_complete(), None);
}

#[test]
fn an_idle_peer_takes_only_a_few_endgame_duplicates_at_a_time() {
    let mut s = Scheduler::new(ScheduleConfig {
        min_pipeline: 16,
        endgame_depth: 2,
        ..config()
    });
    let f = file("a", 10, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    let now = Instant::now();
    assert_eq!(drain(&mut s, now).len(), 10, "peer 1 asked for every block");
    s.peer_connected(peer(2));
    s.peer_has_file(&peer(2), &f.path, f.hash);
    let dups = drain(&mut s, now);
    assert_eq!(dups.len(), 2, "duplicates bounded by endgame_depth");
    assert!(dups.iter().all(|r| r.peer == peer(2)));
    // One duplicate answered: room for exactly one more.
    let first = &dups[0];
    assert_eq!(
        s.handle_block(&peer(2), &f.path, f.hash, first.index, now),
        Arrival::Accepted
    );
    let more = drain(&mut s, now);
    assert_eq!(more.len(), 1);
    assert!(more[0].peer == peer(2) && more[0].index != first.index);
}

#[test]
fn files_are_left_until_every_block_has_come() {
    let mut s = Scheduler::new(config());
    assert!(!s.has_files_left());
    let f = file("a", 2, 1);
    s.add_file(f.clone());
    s.peer_connected(peer(1));
    s.peer_has_file(&peer(1), &f.path, f.hash);
    assert!(s.has_files_left());
    let now = Instant::now();
    for r in drain(&mut s, now) {
        assert!(s.has_files_left());
        s.handle_block(&peer(1), &f.path, f.hash, r.index, now);
    }
    assert_eq!(s.progress().files, 0);
    assert!(!s.has_files_left());
}

#[test]
fn blocks_set_back_to_missing_behind_the_files_in_flight_are_asked_again() {
    // Deep enough a pipeline that the endgame (which looks at every file) is out
    // of the way: the walk starts after the files fully on their way.
    let mut s = Scheduler::new(ScheduleConfig {
        min_pipeline: 1000,
        active_files: 4,
        request_timeout: Duration::from_secs(5),
        ..config()
    });
    let files: Vec<FileRecord> = (0..50).map(|i| file(&format!("f{i}"), 1, i)).collect();
    s.peer_connected(peer(1));
    s.peer_connected(peer(2));
    for f in &files {
        s.add_file(f.clone());
        s.peer_has_file(&peer(1), &f.path, f.hash);
    }
    let t0 = Instant::now();
    assert_eq!(drain(&mut s, t0).len(), 50);
    // Busy, for a file near the front: asked again.
    s.handle_refused(&peer(1), &files[3].path, files[3].hash, 0);
    let again = drain(&mut s, t0);
    assert_eq!(
        again.iter().map(|r| &r.path).collect::<Vec<_>>(),
        [&files[3].path]
    );
    // A new file after them all is asked at once.
    let late = file("late", 1, 200);
    s.add_file(late.clone());
    s.peer_has_file(&peer(1), &late.path, late.hash);
    assert_eq!(drain(&mut s, t0).len(), 1);
    // Timed out: every block is asked again.
    s.handle_timeout(t0 + Duration::from_secs(6));
    assert_eq!(drain(&mut s, t0 + Duration::from_secs(6)).len(), 51);
    // Its peer gone: the first files are asked of the other one, busy enough
    // with files of its own that it is past the endgame (which would look at
    // every file anyway).
    let own: Vec<FileRecord> = (0..8)
        .map(|i| file(&format!("own{i}"), 1, 100 + i))
        .collect();
    for f in &own {
        s.add_file(f.clone());
        s.peer_has_file(&peer(2), &f.path, f.hash);
    }
    assert_eq!(drain(&mut s, t0).len(), 8);
    for f in &files[..2] {
        s.peer_has_file(&peer(2), &f.path, f.hash);
    }
    s.peer_disconnected(&peer(1));
    let moved = drain(&mut s, t0);
    assert_eq!(moved.len(), 2);
    assert!(moved.iter().all(|r| r.peer == peer(2)));
}
