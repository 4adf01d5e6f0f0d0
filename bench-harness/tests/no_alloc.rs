//! One MobileNet inference on one thread allocates nothing: the engine's buffers, the packed
//! weights and every kernel's scratch are set up by `NetRunner::new` and the first run (issue:
//! "no allocation per inference"). Counted with a global allocator that counts the calls made
//! on the test's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sepconv::Kernels;
use sepconv_bench::mobilenet::{network, NetRunner};

thread_local! {
    /// Allocations (and reallocations) made by this thread.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting calls per thread.
struct Counting;

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the only addition is a thread-local counter (const-initialised, so it never allocates).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged (the caller upholds `GlobalAlloc::alloc`'s contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

#[test]
fn a_single_thread_inference_allocates_nothing() {
    for k in Kernels::available() {
        let k = k.with_threads(1).expect("one thread");
        // Layer by layer, with the leading layers fused in row bands, and with pointwise and
        // depthwise pairs fused too (in place and not).
        for (conv, fuse, pairs) in [
            (false, 0, &[][..]),
            (true, 0, &[]),
            (false, 12, &[]),
            (false, 4, &[(4, 2), (6, 2), (22, 3)]),
        ] {
            let net = network(25, 128, conv).expect("a valid network");
            let mut runner = NetRunner::new(k, &net, 3).expect("packed");
            runner.fuse_rows(fuse, 2).expect("fusable");
            runner.fuse_pairs(pairs).expect("fusable pairs");
            runner.run().expect("first run");
            let before = allocs();
            runner.run().expect("second run");
            let during = allocs() - before;
            assert_eq!(
                during,
                0,
                "{} on {}, {fuse} layers fused: {during} allocations",
                net.id,
                k.isa()
            );
        }
    }
    // The counter counts: building a runner allocates.
    let before = allocs();
    let net = network(25, 128, false).expect("a valid network");
    let _ = NetRunner::new(Kernels::best(), &net, 3).expect("packed");
    assert!(allocs() > before);
}
