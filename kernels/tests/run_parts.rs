//! `Kernels::run_parts`: every part runs once, on any thread count, and the error reported is
//! the lowest-numbered part's.

use std::sync::atomic::{AtomicUsize, Ordering};

use sepconv::Kernels;

#[test]
fn every_part_runs_once_on_any_thread_count() {
    for threads in 1..=4 {
        let k = portable(threads);
        for n in [0, 1, 2, 3, 7, 16] {
            let mut out = vec![0usize; n];
            let parts: Vec<(usize, &mut usize)> = out.iter_mut().enumerate().collect();
            let calls = AtomicUsize::new(0);
            let r: Result<(), ()> = k.run_parts(parts, |(i, slot)| {
                calls.fetch_add(1, Ordering::Relaxed);
                *slot += i + 1;
                Ok(())
            });
            assert_eq!(r, Ok(()));
            assert_eq!(
                calls.load(Ordering::Relaxed),
                n,
                "{threads} threads, {n} parts"
            );
            assert_eq!(
                out,
                (1..=n).collect::<Vec<_>>(),
                "{threads} threads, {n} parts"
            );
        }
    }
}

#[test]
fn the_lowest_numbered_failing_part_is_reported_and_the_others_still_run() {
    for threads in 1..=4 {
        let k = portable(threads);
        let calls = AtomicUsize::new(0);
        let r = k.run_parts((0..9).collect(), |i: usize| {
            calls.fetch_add(1, Ordering::Relaxed);
            if i % 3 == 2 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(2), "{threads} threads");
        assert_eq!(calls.load(Ordering::Relaxed), 9, "{threads} threads");
    }
}

/// The portable kernels on `threads` threads (the pool does not depend on the ISA).
fn portable(threads: usize) -> Kernels {
    Kernels::for_isa(sepconv::Isa::Portable)
        .unwrap()
        .with_threads(threads)
        .unwrap()
}
