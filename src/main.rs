//! The `outagewatch` binary: the command line ([`outagewatch::cli`]) on the
//! mimalloc allocator.

use std::process::ExitCode;

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// mimalloc rather than glibc's allocator: a replay allocates each post's
/// strings on the preparing threads and frees them on the pipeline's,
/// which glibc's per-thread arenas handle slowly (issue 15; README
/// "Speed" has the figures). Built without transparent huge pages
/// (`no_thp`): with them, a replay's peak memory was 94 MiB instead of 38.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's purge delay, numbered as in `mi_option_e` of the v3
/// `mimalloc.h` it is built from (the crate does not name it; a test
/// checks the number by the option's default).
const PURGE_DELAY: mi_option_t = 15;

fn main() -> ExitCode {
    return_free_memory_at_once();
    outagewatch::cli::main()
}

/// Freed memory goes back to the system at once rather than after a
/// second: building the matcher of a large catalogue frees most of what
/// it allocates, and holding on to it raised the peak memory of a replay
/// with a 10× catalogue from 48 MiB to 82 (issue 15's bound is 64).
fn return_free_memory_at_once() {
    // SAFETY: `mi_option_set` stores one value in mimalloc's global
    // options; it is called before any other thread exists, with a value
    // mimalloc documents for this option (0: purge at once).
    unsafe { mi_option_set(PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The number names the purge delay: it reads that option's default
    /// in mimalloc v3 (1000 ms, a value no other option has).
    #[test]
    fn the_option_number_is_the_purge_delay() {
        // SAFETY: reading an option has no side effect.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 1000);
    }
}
