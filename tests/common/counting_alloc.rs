//! A global allocator for tests that count memory: the system allocator,
//! with the live heap blocks counted by requested size and the live bytes
//! in all. Unlike RSS, which glibc's arenas move by whole pages as they
//! fragment, the counts are exact. A test binary that includes this module
//! (`#[path = "common/counting_alloc.rs"] mod counting_alloc;`) allocates
//! through it.
//!
//! The only `unsafe` here is the allocator, which must be an `unsafe impl`:
//! it forwards every call to the system allocator unchanged.
#![allow(dead_code)] // each test crate uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// Live blocks by requested size (up to `SIZES - 1`; larger ones share the
/// last slot), one table for the natural alignment and one for larger ones.
const SIZES: usize = 4096;

struct Counting;

static LIVE: [AtomicI64; SIZES] = [const { AtomicI64::new(0) }; SIZES];
static LIVE_ALIGNED: [AtomicI64; SIZES] = [const { AtomicI64::new(0) }; SIZES];
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

fn slot(layout: Layout) -> &'static AtomicI64 {
    let table = if layout.align() > 16 {
        &LIVE_ALIGNED
    } else {
        &LIVE
    };
    &table[layout.size().min(SIZES - 1)]
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        slot(layout).fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        slot(layout).fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        slot(layout).fetch_sub(1, Ordering::Relaxed);
        let new = Layout::from_size_align(new_size, layout.align()).unwrap_or(layout);
        slot(new).fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live blocks now: (size, over-aligned) → count.
pub fn snapshot() -> HashMap<(usize, bool), i64> {
    let mut map = HashMap::new();
    for (aligned, table) in [(false, &LIVE), (true, &LIVE_ALIGNED)] {
        for (size, count) in table.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count != 0 {
                map.insert((size, aligned), count);
            }
        }
    }
    map
}

/// Bytes allocated and not yet freed, by anyone in this process.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}
