//! Names of conflict copies: `name.sync-conflict-YYYYMMDD-HHMMSS-<peer>.ext`.
//!
//! When two versions of a file are concurrent the engine keeps the winner under the
//! original name and the loser beside it under a conflict name. The time is the
//! losing version's modification time in UTC; the peer is the [`ShortId`] of the
//! peer that made the losing change, in its 13-character Base32 form.

use keys::ShortId;

use crate::{MAX_COMPONENT_LEN, PathError, RelPath, Timestamp};

const MARKER: &str = ".sync-conflict-";
/// `YYYYMMDD-HHMMSS-` + 13 Base32 characters.
const TAIL_LEN: usize = 8 + 1 + 6 + 1 + 13;

/// The conflict-copy name for the file name `name` (one component, not a path).
///
/// The marker goes before the last extension so the copy still opens with the same
/// program: `report.pdf` → `report.sync-conflict-20261201-130500-AAAAAAAAAAAAA.pdf`.
/// A leading dot is not an extension (`.bashrc` keeps its whole name as the stem).
/// If the result would pass [`MAX_COMPONENT_LEN`] the stem is shortened.
pub fn conflict_name(name: &str, when: Timestamp, peer: ShortId) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    let (y, mo, d, h, mi, s) = civil(when.secs);
    let marker = format!("{MARKER}{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{peer}");
    let room = MAX_COMPONENT_LEN.saturating_sub(marker.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = stem.get(..cut).unwrap_or("");
    format!("{stem}{marker}{ext}")
}

/// The conflict-copy path for `path`: same directory, [`conflict_name`] of its name.
pub fn conflict_path(path: &RelPath, when: Timestamp, peer: ShortId) -> Result<RelPath, PathError> {
    let name = conflict_name(path.file_name(), when, peer);
    match path.parent() {
        Some(dir) => dir.join(&name),
        None => RelPath::new(name),
    }
}

/// Whether `name` (one component) already is a conflict copy, so the engine never
/// makes a conflict copy of a conflict copy's conflict copy without end.
pub fn is_conflict_name(name: &str) -> bool {
    name.match_indices(MARKER).any(|(i, _)| {
        let tail = name.get(i + MARKER.len()..).unwrap_or("");
        let (fields, rest) = tail.split_at_checked(TAIL_LEN).unwrap_or(("", "x"));
        let b = fields.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
        (rest.is_empty() || rest.starts_with('.'))
            && digits(0..8)
            && b.get(8) == Some(&b'-')
            && digits(9..15)
            && b.get(15) == Some(&b'-')
            && b.get(16..)
                .is_some_and(|s| s.iter().all(|c| matches!(c, b'A'..=b'Z' | b'2'..=b'7')))
    })
}

/// Year, month, day, hour, minute, second in UTC (proleptic Gregorian), after
/// Howard Hinnant's `civil_from_days`. Years outside 0..=9999 are clamped so the
/// name keeps its fixed width.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    // Clamp to 0000-01-01 ..= 9999-12-31T23:59:59.
    let secs = secs.clamp(-62_167_219_200, 253_402_300_799);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        y,
        t(m),
        t(d),
        t(rem / 3600),
        t(rem % 3600 / 60),
        t(rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: ShortId = ShortId(0);

    #[test]
    fn names() {
        // 2026-12-01T13:05:00Z
        let t = Timestamp {
            secs: 1_796_130_300,
            nanos: 0,
        };
        assert_eq!(
            conflict_name("report.pdf", t, PEER),
            "report.sync-conflict-20261201-130500-AAAAAAAAAAAAA.pdf"
        );
        assert_eq!(
            conflict_name("Makefile", t, PEER),
            "Makefile.sync-conflict-20261201-130500-AAAAAAAAAAAAA"
        );
        assert_eq!(
            conflict_name(".bashrc", t, PEER),
            ".bashrc.sync-conflict-20261201-130500-AAAAAAAAAAAAA"
        );
        assert_eq!(
            conflict_name("a.tar.gz", t, ShortId(u64::MAX)),
            "a.tar.sync-conflict-20261201-130500-7777777777776.gz"
        );
        assert_eq!(
            conflict_name("x", Timestamp { secs: 0, nanos: 0 }, PEER),
            "x.sync-conflict-19700101-000000-AAAAAAAAAAAAA"
        );
        assert_eq!(
            conflict_name("x", Timestamp { secs: -1, nanos: 0 }, PEER),
            "x.sync-conflict-19691231-235959-AAAAAAAAAAAAA"
        );
        assert_eq!(
            conflict_name(
                "x",
                Timestamp {
                    secs: 951_782_400,
                    nanos: 0
                },
                PEER
            ),
            "x.sync-conflict-20000229-000000-AAAAAAAAAAAAA"
        );
    }

    #[test]
    fn long_names_are_shortened() {
        let name = "é".repeat(127) + ".txt";
        let c = conflict_name(&name, Timestamp::default(), PEER);
        assert!(c.len() <= MAX_COMPONENT_LEN);
        assert!(c.ends_with(".txt") && is_conflict_name(&c));
        assert!(
            conflict_name(&"y".repeat(300), Timestamp::default(), PEER).len() <= MAX_COMPONENT_LEN
        );
    }

    #[test]
    fn detects_conflict_names() {
        let t = Timestamp {
            secs: 1_796_130_300,
            nanos: 0,
        };
        for n in ["report.pdf", "Makefile", ".x", "a.tar.gz"] {
            let c = conflict_name(n, t, ShortId(12345));
            assert!(is_conflict_name(&c), "{c}");
            assert!(!is_conflict_name(n));
        }
        assert!(!is_conflict_name(
            "a.sync-conflict-2026120-130500-AAAAAAAAAAAAA"
        ));
        assert!(!is_conflict_name(
            "a.sync-conflict-20261201-130500-AAAAAAAAAAAAAx"
        ));
        assert!(!is_conflict_name(
            "a.sync-conflict-20261201-130500-aaaaaaaaaaaaa"
        ));
        assert!(!is_conflict_name("a.sync-conflict-"));
    }

    #[test]
    fn conflict_paths_stay_in_their_directory() {
        let p = RelPath::new("a/b/c.txt").unwrap();
        let c = conflict_path(&p, Timestamp::default(), PEER).unwrap();
        assert_eq!(c.parent(), p.parent());
        assert!(is_conflict_name(c.file_name()));
    }
}
