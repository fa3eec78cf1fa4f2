//! Tunes glibc's `malloc` for a long-running daemon that moves blocks.
//!
//! - **Arenas.** By default glibc gives each thread that allocates an arena of
//!   its own, up to eight per core. Each keeps the memory its thread freed for
//!   reuse by that thread, so a daemon whose connection, folder, flushing and
//!   watcher threads hand buffers to one another keeps several partly used
//!   arenas: in a small-file transfer (`bench/ab.py`), 3–4 MB of a receiver's
//!   24 MB of anonymous memory at two arenas against eight, and 1.5–2 MB more
//!   at one against two, for no loss of speed (CPU and time within noise): the
//!   threads that allocate most (a connection's reader, the folder) seldom do so
//!   at the same moment on two cores.
//! - **Freed memory kept.** Blocks (at most 1 MiB in files under 4 GiB, 8 MiB
//!   in the largest) and frames are allocated and freed at hundreds of
//!   megabytes a second. glibc returns the
//!   free top of its heap to the kernel once it exceeds the trim threshold
//!   (128 KiB, doubled each time a large block is freed, so ~0.5 MiB here), and
//!   the next blocks fault the same pages in again, zeroed: page faults and
//!   `clear_page` were ~7 % of a sender's samples in `large`. With the
//!   thresholds fixed, up to [`TRIM_THRESHOLD`] of freed memory stays for the
//!   next blocks; the peak (what a transfer holds at once) does not grow.
//!
//! Every setting the user made (`MALLOC_*` variables, `GLIBC_TUNABLES`) stands.
//! The unsafe calls are here, in a crate of their own, so that every other crate
//! keeps `forbid(unsafe_code)`.

#![deny(unsafe_code)]

/// Arenas at most: the main one only.
pub const ARENAS: i32 = 1;

/// Freed memory at the top of the heap kept for reuse rather than returned.
pub const TRIM_THRESHOLD: i32 = 8 << 20;

/// Allocations at least this large get pages of their own (`mmap`), returned
/// when freed: the blocks of files under 64 GiB (4 MiB at most, nearly all
/// smaller) come from the heap.
pub const MMAP_THRESHOLD: i32 = 4 << 20;

/// One of glibc's `mallopt` parameters, with the environment variable and
/// tunable that a user sets it with.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
struct Setting {
    param: i32,
    value: i32,
    env: &'static str,
    tunable: &'static str,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTINGS: [Setting; 3] = [
    Setting {
        param: libc::M_ARENA_MAX,
        value: ARENAS,
        env: "MALLOC_ARENA_MAX",
        tunable: "arena_max",
    },
    Setting {
        param: libc::M_TRIM_THRESHOLD,
        value: TRIM_THRESHOLD,
        env: "MALLOC_TRIM_THRESHOLD_",
        tunable: "trim_threshold",
    },
    Setting {
        param: libc::M_MMAP_THRESHOLD,
        value: MMAP_THRESHOLD,
        env: "MALLOC_MMAP_THRESHOLD_",
        tunable: "mmap_threshold",
    },
];

/// Applies every setting the user did not make. Call it first thing, before
/// threads start. Returns how many were set (0 elsewhere than on glibc).
pub fn tune() -> usize {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    settings()
        .iter()
        .filter(|s| std::env::var_os(s.env).is_none() && !tunables.contains(s.tunable))
        .filter(|s| set(s.param, s.value))
        .count()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn settings() -> &'static [Setting] {
    &SETTINGS
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn settings() -> &'static [Setting] {
    &[]
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(param: i32, value: i32) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` sets one integer parameter of glibc's allocator; it
    // takes no pointers and is safe to call from any thread at any time.
    let done = unsafe { libc::mallopt(param, value) };
    done == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_param: i32, _value: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_every_setting() {
        for s in super::SETTINGS {
            assert!(super::set(s.param, s.value), "{} refused", s.env);
        }
        // Threads started after them still allocate and free as usual, blocks
        // above and below the mmap threshold alike.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let len = if i % 2 == 0 { 1 << 16 } else { 5 << 20 };
                    let sum = vec![i as u8; len]
                        .iter()
                        .map(|&b| u64::from(b))
                        .sum::<u64>();
                    (sum, len as u64)
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let (sum, len) = h.join().unwrap();
            assert_eq!(sum, i as u64 * len);
        }
    }
}
