//! Caps how many arenas glibc's `malloc` keeps.
//!
//! By default glibc gives each thread that allocates an arena of its own, up to
//! eight per core. Each keeps the memory its thread freed for reuse by that
//! thread, so a daemon whose connection, folder, flushing and watcher threads
//! hand buffers to one another keeps several partly used arenas: in a
//! small-file transfer (`bench/ab.py`), 3–4 MB of a receiver's 24 MB of anonymous
//! memory, for no gain in speed (CPU and time within noise at two arenas).
//!
//! The one unsafe call is here, in a crate of its own, so that every other crate
//! keeps `forbid(unsafe_code)`.

#![deny(unsafe_code)]

/// Arenas at most: the main one and one more.
pub const ARENAS: i32 = 2;

/// Caps glibc's `malloc` at [`ARENAS`] arenas, unless the user chose a cap
/// (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`). Call it first
/// thing, before threads start. True if the cap was set; false elsewhere than
/// on glibc, or when the user's choice stands.
pub fn limit() -> bool {
    let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    !chosen && set_arena_max(ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: i32) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` sets one integer parameter of glibc's allocator; it
    // takes no pointers and is safe to call from any thread at any time.
    let done = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    done == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_cap() {
        assert!(super::set_arena_max(super::ARENAS));
        // Threads started after it still allocate and free as usual.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    vec![i as u8; 1 << 16]
                        .iter()
                        .map(|&b| u64::from(b))
                        .sum::<u64>()
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), (i as u64) << 16);
        }
    }
}
