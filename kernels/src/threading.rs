//! The `threads` parameter: a persistent rayon pool per thread count, built on first use.
//!
//! Drivers cut their output into disjoint parts (safe `&mut` slices) and hand them here. Each
//! output element is computed by exactly one part, in the same order whatever the thread count,
//! so results are bit-identical for any `threads`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use rayon::ThreadPool;

/// The pools built so far, by thread count.
type Pools = Mutex<Vec<(usize, Arc<ThreadPool>)>>;

fn pool(threads: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
    let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return p.clone();
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sepconv-{i}"))
            .build()
            .expect("failed to start sepconv worker threads"),
    );
    pools.push((threads, p.clone()));
    p
}

/// Runs `f` on a worker of the pool of `threads` threads (on the calling thread when 1), so the
/// operators `f` calls with that thread count start their parts from inside the pool, while the
/// other workers stay awake: until `f` returns, each polls for parts to take (rayon's
/// `yield_now`) instead of going to sleep when it runs out of work, so an operator that follows
/// a moment of imbalance finds them running, not asleep (`Kernels::run_in_pool` has the
/// measurements). The workers burn their cores while `f` runs, as OpenMP runtimes do for a
/// while after each parallel region.
///
/// A kept-awake worker blocks until `f` returns, so it must never run on top of a part of `f`
/// (or of anything `f` waits for) on its thread's stack: that part could not resume until `f`
/// returned, and `f` waits for it. Rayon runs the keep-awake job on a worker whenever that
/// worker looks for work, also while it waits inside another job, and a worker that looked just
/// before the job was queued can steal one of `f`'s parts first. That deadlocked (on a 16-core
/// VM, within a few hundred inferences; `tests/run_parts.rs` hits it in seconds on 2 cores).
/// Two rules close it:
/// - `f` starts only once every worker has entered its keep-awake job, so none of `f`'s parts
///   can be below one (the caller keeps taking work while it waits, so callers of the pool on
///   other threads and nested calls progress);
/// - a keep-awake job that starts on a thread already inside `in_pool` (as a caller or kept
///   awake, e.g. two threads calling it on the same pool, or a nested call) returns at once:
///   only one frame per thread ever blocks on a `done` flag, at the bottom of the stack.
pub(crate) fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads <= 1 {
        return f();
    }
    pool(threads).install(|| {
        let _frame = PoolFrame::enter();
        let done = AtomicBool::new(false);
        let entered = AtomicUsize::new(0);
        let mut out = None;
        rayon::in_place_scope(|s| {
            s.spawn_broadcast(|_, _| {
                entered.fetch_add(1, Ordering::AcqRel);
                // The caller's own copy, or a thread already in a pool frame: not at the
                // bottom of its stack, so it must not block (see above).
                if IN_POOL_FRAME.get() {
                    return;
                }
                let _frame = PoolFrame::enter();
                poll_while(|| !done.load(Ordering::Acquire));
            });
            // Set `done` however `f` ends (a panic too), so the scope's wait for the other
            // workers ends.
            let _release = SetOnDrop(&done);
            // Every worker (this one too: its copy returns at once) inside its keep-awake job
            // before `f` makes any part to steal.
            poll_while(|| entered.load(Ordering::Acquire) < threads);
            out = Some(f());
        });
        out.expect("f ran inside the scope")
    })
}

/// Keeps this thread taking the pool's work while `busy()`: one job at a time when there is
/// one, else spinning, and now and then giving the core to the OS, since with more threads than
/// free cores pure spinning starves the workers that have parts to run.
fn poll_while(busy: impl Fn() -> bool) {
    let mut idle = 0u32;
    while busy() {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
            continue;
        }
        idle = idle.wrapping_add(1);
        if idle.is_multiple_of(IDLE_POLLS_PER_OS_YIELD) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

thread_local! {
    /// Whether this thread is inside `in_pool`, as its caller or kept awake by it.
    static IN_POOL_FRAME: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside `in_pool` until dropped (then restores what it was).
struct PoolFrame(bool);

impl PoolFrame {
    fn enter() -> PoolFrame {
        PoolFrame(IN_POOL_FRAME.replace(true))
    }
}

impl Drop for PoolFrame {
    fn drop(&mut self) {
        IN_POOL_FRAME.set(self.0);
    }
}

/// Idle polls of a kept-awake worker between two yields of its core to the OS.
const IDLE_POLLS_PER_OS_YIELD: u32 = 16;

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `f` on every part, on up to `threads` threads (inline when 1 or when there is one part).
///
/// Work stealing decides which worker runs which part. Pinning part `i` to worker `i` (rayon's
/// `broadcast`, so each core keeps its slice of the weights and rows from call to call) was
/// measured on a 16-core Emerald Rapids VM (MobileNet v1 1.0-224, batch 1, three alternating
/// rounds): 0.87-1.0x the time at 4 threads but 1.2-1.4x at 16, where waking every worker for
/// every operator costs more than the locality saves.
pub(crate) fn run_parts<T: Send>(threads: usize, parts: Vec<T>, f: impl Fn(T) + Sync + Send) {
    if threads <= 1 || parts.len() <= 1 {
        parts.into_iter().for_each(f);
    } else {
        pool(threads).install(|| parts.into_par_iter().for_each(f));
    }
}

/// Splits `0..n` into at most `parts` contiguous ranges of whole `quantum`s, as even as possible.
pub(crate) fn split_even(n: usize, parts: usize, quantum: usize) -> Vec<std::ops::Range<usize>> {
    let units = n.div_ceil(quantum);
    let parts = parts.clamp(1, units.max(1));
    (0..parts)
        .map(|p| {
            let lo = (units * p / parts * quantum).min(n);
            let hi = (units * (p + 1) / parts * quantum).min(n);
            lo..hi
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// The pieces of an output buffer for a sorted sequence of `(item, start offset)`: piece `i` runs
/// from its start to the next item's start (the last one to the end of the buffer). Lazy: cutting
/// allocates nothing.
pub(crate) struct Pieces<'a, T, I: Iterator<Item = (T, usize)>> {
    rest: &'a mut [f32],
    consumed: usize,
    items: std::iter::Peekable<I>,
}

impl<'a, T, I: Iterator<Item = (T, usize)>> Pieces<'a, T, I> {
    /// Pieces of `data` for `items` (sorted by start offset).
    pub(crate) fn new(data: &'a mut [f32], items: I) -> Self {
        Pieces {
            rest: data,
            consumed: 0,
            items: items.peekable(),
        }
    }
}

impl<'a, T, I: Iterator<Item = (T, usize)>> Iterator for Pieces<'a, T, I> {
    type Item = (T, &'a mut [f32]);

    fn next(&mut self) -> Option<Self::Item> {
        let (item, start) = self.items.next()?;
        let skip = (start - self.consumed).min(self.rest.len());
        let tail = std::mem::take(&mut self.rest).split_at_mut(skip).1;
        let len = match self.items.peek() {
            Some(&(_, next)) => (next - start).min(tail.len()),
            None => tail.len(),
        };
        let (piece, next) = tail.split_at_mut(len);
        self.rest = next;
        self.consumed = start + len;
        Some((item, piece))
    }
}

/// Cuts `data` into the pieces of `items` (see [`Pieces`]) and runs `f` on contiguous bands of
/// them: one band (all items, in order, on the calling thread, with no allocation) when
/// `bands <= 1`, else up to `bands` bands of about `items.len() / bands` items on the pool of
/// `threads` threads. `f` sees a band as an iterator, so it can set up per-thread state once per
/// band.
pub(crate) fn run_bands<T: Send, I>(
    threads: usize,
    bands: usize,
    data: &mut [f32],
    items: I,
    f: impl Fn(&mut dyn Iterator<Item = (T, &mut [f32])>) + Sync + Send,
) where
    I: ExactSizeIterator<Item = (T, usize)>,
{
    if threads <= 1 || bands <= 1 || items.len() <= 1 {
        f(&mut Pieces::new(data, items));
        return;
    }
    let bands = split_even(items.len(), bands, 1);
    let mut pieces = Pieces::new(data, items);
    let parts: Vec<Vec<(T, &mut [f32])>> = bands
        .iter()
        .map(|b| pieces.by_ref().take(b.len()).collect())
        .collect();
    run_parts(threads, parts, |band| f(&mut band.into_iter()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_run_from_each_start_to_the_next() {
        let mut data: Vec<f32> = (0..10).map(|x| x as f32).collect();
        let items = [('a', 1), ('b', 4), ('c', 4), ('d', 8)];
        let got: Vec<(char, Vec<f32>)> = Pieces::new(&mut data, items.into_iter())
            .map(|(c, p)| (c, p.to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                ('a', vec![1.0, 2.0, 3.0]),
                ('b', vec![]),
                ('c', vec![4.0, 5.0, 6.0, 7.0]),
                ('d', vec![8.0, 9.0])
            ]
        );
    }

    #[test]
    fn bands_cover_every_item_once_in_order() {
        for bands in 1..5 {
            let mut data = vec![0.0f32; 12];
            let items = (0..6).map(|i| (i, 2 * i));
            run_bands(4, bands, &mut data, items, |band| {
                for (i, piece) in band {
                    assert_eq!(piece.len(), 2);
                    piece.fill(i as f32 + 1.0);
                }
            });
            let want: Vec<f32> = (0..12).map(|x| (x / 2) as f32 + 1.0).collect();
            assert_eq!(data, want, "{bands} bands");
        }
    }
}
