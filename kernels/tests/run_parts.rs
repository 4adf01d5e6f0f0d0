//! `Kernels::run_parts`: every part runs once, on any thread count, and the error reported is
//! the lowest-numbered part's. `Kernels::run_in_pool`: operators called inside it give the
//! same bits.

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

#[test]
fn operators_inside_the_pool_give_the_same_bits() {
    use sepconv::{Activation, Shape, TensorView, TensorViewMut, WeightLayout};
    let (h, w, cin, cout) = (29, 31, 67, 45); // 2.7 M multiply-adds: split over 4 threads
    let x: Vec<f32> = (0..h * w * cin).map(|i| (i as f32 * 0.37).sin()).collect();
    let wt: Vec<f32> = (0..cin * cout).map(|i| (i as f32 * 0.11).cos()).collect();
    let run = |k: Kernels, inside: bool| {
        let packed = k
            .pack_pointwise(&wt, WeightLayout::Hwio, None, cin, cout)
            .unwrap();
        let mut y = vec![0.0f32; h * w * cout];
        let mut call = || {
            let xv = TensorView::new(&x, Shape::new(1, h, w, cin)).unwrap();
            let mut yv = TensorViewMut::new(&mut y, Shape::new(1, h, w, cout)).unwrap();
            k.pointwise(&xv, &packed, Activation::Relu, &mut yv)
        };
        if inside {
            k.run_in_pool(call).unwrap();
        } else {
            call().unwrap();
        }
        y
    };
    let want = run(portable(1), false);
    for threads in 1..=4 {
        let got = run(portable(threads), true);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} threads inside the pool"
        );
        assert_eq!(portable(threads).run_in_pool(|| threads * 2), threads * 2);
    }
}

#[test]
fn a_panic_inside_the_pool_reaches_the_caller_and_the_pool_still_works() {
    for threads in 2..=4 {
        let k = portable(threads);
        let r = std::panic::catch_unwind(|| k.run_in_pool(|| panic!("inside")));
        assert!(r.is_err(), "{threads} threads");
        // The workers kept awake for the failed call were released: the pool runs again.
        let total = AtomicUsize::new(0);
        let r: Result<(), ()> = k.run_in_pool(|| {
            k.run_parts((1..=10).collect(), |i: usize| {
                total.fetch_add(i, Ordering::Relaxed);
                Ok(())
            })
        });
        assert_eq!((r, total.load(Ordering::Relaxed)), (Ok(()), 55));
    }
}

/// Runs `f` on its own thread and fails if it has not returned within `limit` (a deadlock
/// would otherwise hang the test run; the stuck threads end with the test process).
fn within(limit: std::time::Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => {}
        Err(e) => panic!("{what}: not done within {limit:?} ({e}): deadlocked?"),
    }
}

/// One inference-like call: three operators of 40 parts each inside `run_in_pool`; checks that
/// every part ran.
fn three_operators_in_the_pool(k: &Kernels) {
    let total = AtomicUsize::new(0);
    let r: Result<(), ()> = k.run_in_pool(|| {
        for _ in 0..3 {
            k.run_parts((1..=40).collect(), |i: usize| {
                let mut x = i;
                for _ in 0..200 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                std::hint::black_box(x);
                total.fetch_add(i, Ordering::Relaxed);
                Ok(())
            })?;
        }
        Ok(())
    });
    assert_eq!((r, total.load(Ordering::Relaxed)), (Ok(()), 3 * 820));
}

/// Many short calls of `run_in_pool` in a row, as a network's inferences are. A worker that
/// stole a part before entering its keep-awake job, and entered that job while waiting inside
/// the part, deadlocked the pool (first seen on a 16-core VM; here within seconds on 2 cores).
#[test]
fn many_calls_in_the_pool_never_deadlock() {
    within(std::time::Duration::from_secs(60), "calls in a row", || {
        for threads in [2, 3, 4, 8, 16] {
            let k = portable(threads);
            for _ in 0..2000 {
                three_operators_in_the_pool(&k);
            }
        }
    });
}

/// Two threads calling `run_in_pool` on the same pool at once, one of them with a nested call:
/// each thread's keep-awake jobs must not block the other's parts.
#[test]
fn concurrent_and_nested_calls_in_the_pool_never_deadlock() {
    within(
        std::time::Duration::from_secs(60),
        "concurrent calls",
        || {
            for threads in [2, 4, 8] {
                std::thread::scope(|s| {
                    s.spawn(|| {
                        let k = portable(threads);
                        for _ in 0..500 {
                            three_operators_in_the_pool(&k);
                        }
                    });
                    s.spawn(|| {
                        let k = portable(threads);
                        for _ in 0..500 {
                            k.run_in_pool(|| three_operators_in_the_pool(&k));
                        }
                    });
                });
            }
        },
    );
}
