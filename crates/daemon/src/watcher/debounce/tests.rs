use std::collections::HashSet;

use super::*;

const C: Config = Config::CLOSE_EVENTS;

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn paths(names: &[&str]) -> Due {
    Due::Paths(names.iter().map(|n| rel(n)).collect())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}

/// Feeds `events` (milliseconds from the start, path, change) to a
/// debouncer on a virtual clock, polling whenever `poll_timeout` says, and
/// returns what was due when, up to `end` ms. What is due at a moment is
/// polled before the events of that moment are handled.
fn drive(config: Config, events: &[(u64, &str, Change)], end: u64) -> Vec<(u64, Due)> {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_millis(t);
    let mut d = Debouncer::new(config);
    let mut out = Vec::new();
    let mut events = events.iter().peekable();
    let mut now = t0;
    loop {
        let next_event = events.peek().map(|e| at(e.0));
        match (d.poll_timeout(), next_event) {
            (Some(due), e) if due <= at(end) && e.is_none_or(|e| due <= e) => {
                assert!(due >= now, "a timeout in the past");
                if due > now {
                    let before = due - Duration::from_millis(1);
                    assert_eq!(d.poll_due(before.max(now)), None, "due before its timeout");
                }
                now = due;
                let batch = d.poll_due(now).expect("nothing due at the timeout");
                out.push((ms(now - t0), batch));
            }
            (_, Some(e)) if e <= at(end) => {
                let &(_, path, change) = events.next().unwrap();
                now = e;
                d.handle_change(now, rel(path), change);
                assert!(d.pending.len() <= config.max_paths);
            }
            _ => return out,
        }
    }
}

/// Every `step` ms from `from` to `to` (inclusive).
fn every(step: u64, from: u64, to: u64) -> impl Iterator<Item = u64> {
    (from..=to).step_by(usize::try_from(step).unwrap())
}

#[test]
fn nothing_pending_means_no_timeout() {
    let mut d = Debouncer::new(C);
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(d.poll_due(Instant::now()), None);
}

#[test]
fn written_once_and_closed_goes_after_the_gather() {
    let got = drive(
        C,
        &[(0, "a", Change::Writing), (2, "a", Change::Finished)],
        5_000,
    );
    assert_eq!(got, [(2 + ms(C.gather), paths(&["a"]))]);
}

#[test]
fn renamed_into_place_goes_after_the_gather_and_metadata_keeps_it_finished() {
    let got = drive(
        C,
        &[(0, "a", Change::Finished), (1, "a", Change::Metadata)],
        5_000,
    );
    assert_eq!(got, [(1 + ms(C.gather), paths(&["a"]))]);
    // A bare chmod is no writer either.
    let got = drive(C, &[(0, "b", Change::Metadata)], 5_000);
    assert_eq!(got, [(ms(C.gather), paths(&["b"]))]);
}

#[test]
fn written_every_50ms_waits_until_quiet() {
    let writes: Vec<_> = every(50, 0, 2_000)
        .map(|t| (t, "a", Change::Writing))
        .collect();
    let got = drive(C, &writes, 10_000);
    assert_eq!(got, [(2_000 + ms(C.quiet), paths(&["a"]))]);

    // Its writer closing it ends the wait.
    let mut closed = writes.clone();
    closed.push((2_010, "a", Change::Finished));
    let got = drive(C, &closed, 10_000);
    assert_eq!(got, [(2_010 + ms(C.gather), paths(&["a"]))]);
}

#[test]
fn without_close_events_quiet_is_shorter() {
    let writes: Vec<_> = every(50, 0, 1_000)
        .map(|t| (t, "a", Change::Writing))
        .collect();
    let config = Config::NO_CLOSE_EVENTS;
    let got = drive(config, &writes, 10_000);
    assert_eq!(got, [(1_000 + ms(config.quiet), paths(&["a"]))]);
}

#[test]
fn appended_to_forever_goes_every_max_delay() {
    let writes: Vec<_> = every(50, 0, 25_000)
        .map(|t| (t, "log", Change::Writing))
        .collect();
    let got = drive(C, &writes, 60_000);
    let max = ms(C.max_delay);
    assert_eq!(
        got,
        [
            (max, paths(&["log"])),
            (2 * max, paths(&["log"])),
            // The last episode began at 2 * max and ends in quiet.
            (25_000 + ms(C.quiet), paths(&["log"])),
        ]
    );
}

#[test]
fn closed_and_reopened_again_and_again_waits_until_quiet() {
    // `echo line >> f` every 50 ms: each append ends with a close.
    let appends: Vec<_> = every(50, 0, 2_000)
        .flat_map(|t| [(t, "f", Change::Writing), (t + 1, "f", Change::Finished)])
        .collect();
    let got = drive(C, &appends, 10_000);
    assert_eq!(
        got,
        [
            // The first looks like a save.
            (1 + ms(C.gather), paths(&["f"])),
            // The next began right after it went: busy until quiet.
            (2_001 + ms(C.quiet), paths(&["f"])),
        ]
    );
}

#[test]
fn a_burst_of_files_is_one_batch() {
    let names: Vec<String> = (0..50).map(|i| format!("dir/f{i:02}")).collect();
    let events: Vec<_> = (0u64..)
        .zip(&names)
        .flat_map(|(t, n)| {
            [
                (t, n.as_str(), Change::Writing),
                (t, n.as_str(), Change::Finished),
            ]
        })
        .collect();
    let got = drive(C, &events, 5_000);
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(got, [(49 + ms(C.gather), paths(&all))]);
}

#[test]
fn a_steady_storm_flows_in_batches() {
    // A file finished every 10 ms for a second: the folder is never quiet for
    // the gather, so each path waits at most gather_max.
    let names: Vec<String> = (0..100).map(|i| format!("f{i:03}")).collect();
    let times: HashMap<&str, u64> = names
        .iter()
        .map(String::as_str)
        .zip(every(10, 0, 990))
        .collect();
    let events: Vec<_> = names
        .iter()
        .map(|n| (times[n.as_str()], n.as_str(), Change::Finished))
        .collect();
    let got = drive(C, &events, 5_000);
    let mut seen = HashSet::new();
    for (t, due) in &got {
        let Due::Paths(batch) = due else {
            panic!("unexpected {due:?}")
        };
        for p in batch {
            assert!(seen.insert(p.clone()), "{p:?} handed out twice");
            let waited = t - times[p.as_str()];
            assert!(waited <= ms(C.gather_max), "{p:?} waited {waited} ms");
        }
    }
    assert_eq!(seen.len(), names.len());
    assert!(got.len() <= 11, "{} batches", got.len());
}

#[test]
fn a_file_written_nonstop_holds_a_save_back_by_gather_max_at_most() {
    let mut events: Vec<_> = every(20, 0, 2_000)
        .map(|t| (t, "log", Change::Writing))
        .collect();
    events.push((505, "saved", Change::Finished));
    events.sort_by_key(|e| e.0);
    let got = drive(C, &events, 5_000);
    assert_eq!(
        got,
        [
            (505 + ms(C.gather_max), paths(&["saved"])),
            (ms(C.max_delay).min(2_000 + ms(C.quiet)), paths(&["log"])),
        ]
    );
}

#[test]
fn too_many_paths_become_one_rescan() {
    let config = Config { max_paths: 8, ..C };
    let names: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
    let events: Vec<_> = (0u64..)
        .zip(&names)
        .map(|(t, n)| (t, n.as_str(), Change::Finished))
        .collect();
    let got = drive(config, &events, 5_000);
    assert_eq!(got, [(8 + ms(C.quiet), Due::Rescan)]);
}

#[test]
fn a_storm_of_millions_of_paths_stays_bounded() {
    let config = Config {
        max_paths: 100,
        ..C
    };
    let t0 = Instant::now();
    let mut d = Debouncer::new(config);
    let mut rescans = 0;
    let mut handed_out = 0;
    for i in 0..1_000_000u64 {
        // A path every microsecond, polled every millisecond.
        let now = t0 + Duration::from_micros(i);
        d.handle_change(now, rel(&format!("d/{i}")), Change::Finished);
        if i % 1_000 == 0 {
            match d.poll_due(now) {
                Some(Due::Rescan) => rescans += 1,
                Some(Due::Paths(p)) => handed_out += p.len(),
                None => {}
            }
        }
        assert!(d.pending.len() <= config.max_paths);
        assert!(d.recent.len() <= config.max_paths);
    }
    // One second of storm: one rescan pending, nothing handed out path by path.
    assert_eq!((rescans, handed_out), (0, 0));
    let end = t0 + Duration::from_micros(999_999);
    assert_eq!(d.poll_timeout(), Some(end + config.quiet));
    assert_eq!(d.poll_due(end + config.quiet), Some(Due::Rescan));
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn a_rescan_takes_the_pending_paths_along() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(C);
    d.handle_change(t0, rel("a"), Change::Finished);
    d.handle_rescan(t0 + Duration::from_millis(5));
    let due = t0 + Duration::from_millis(5) + C.quiet;
    assert_eq!(d.poll_timeout(), Some(due));
    assert_eq!(d.poll_due(due), Some(Due::Rescan));
    assert_eq!(d.poll_due(due + C.max_delay), None);
}

#[test]
fn a_rescan_during_a_storm_goes_after_max_delay() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(C);
    d.handle_rescan(t0);
    let mut got = Vec::new();
    for t in every(100, 0, 20_000) {
        let now = t0 + Duration::from_millis(t);
        if let Some(due) = d.poll_due(now) {
            got.push((t, due));
        }
        d.handle_change(now, rel("b"), Change::Writing);
    }
    let max = ms(C.max_delay);
    assert_eq!(
        got,
        [
            (max, Due::Rescan),
            // b's own first event after the rescan was at `max`.
            (2 * max, paths(&["b"])),
        ]
    );
}
