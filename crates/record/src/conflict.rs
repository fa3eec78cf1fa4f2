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
    let marker = format!("{MARKER}{}-{peer}", when.utc_stamp());
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
impl Timestamp {
    /// `YYYYMMDD-HHMMSS` in UTC, as in conflict and archive names.
    pub fn utc_stamp(self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.secs);
        format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
    }

    /// The time a [`utc_stamp`](Self::utc_stamp) names, if `stamp` is one.
    pub fn from_utc_stamp(stamp: &str) -> Option<Self> {
        let b = stamp.as_bytes();
        if b.len() != 15 || b.get(8) != Some(&b'-') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = stamp.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        // Days from the civil date (the inverse of `civil`).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(Self {
            secs: days * 86_400 + h * 3600 + mi * 60 + s,
            nanos: 0,
        })
    }
}

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

    #[test]
    fn utc_stamps_round_trip() {
        for secs in [
            0,
            1_796_133_972,
            951_782_400, /* 2000-02-29 */
            -86_400,
            253_402_300_799,
        ] {
            let t = Timestamp { secs, nanos: 0 };
            assert_eq!(
                Timestamp::from_utc_stamp(&t.utc_stamp()),
                Some(t),
                "{}",
                t.utc_stamp()
            );
        }
        assert_eq!(
            Timestamp { secs: 0, nanos: 0 }.utc_stamp(),
            "19700101-000000"
        );
        for bad in [
            "",
            "20261301-000000",
            "2026010-1000000",
            "20260101x000000",
            "2026010a-000000",
        ] {
            assert_eq!(Timestamp::from_utc_stamp(bad), None, "{bad}");
        }
    }

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
