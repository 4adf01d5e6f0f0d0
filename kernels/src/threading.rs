//! The `threads` parameter: a persistent rayon pool per thread count, built on first use.
//!
//! Drivers cut their output into disjoint parts (safe `&mut` slices) and hand them here. Each
//! output element is computed by exactly one part, in the same order whatever the thread count,
//! so results are bit-identical for any `threads`.

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

/// Runs `f` on every part, on up to `threads` threads (inline when 1 or when there is one part).
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

/// Cuts `data` into disjoint pieces starting at the sorted offsets `starts`; piece `i` runs to
/// `starts[i + 1]` (the last one to the end of `data`). Offsets past the end give empty pieces.
pub(crate) fn split_at_offsets<'a>(data: &'a mut [f32], starts: &[usize]) -> Vec<&'a mut [f32]> {
    let mut pieces = Vec::with_capacity(starts.len());
    let mut rest = data;
    let mut consumed = 0;
    for (i, &start) in starts.iter().enumerate() {
        let skip = (start - consumed).min(rest.len());
        let tail = std::mem::take(&mut rest).split_at_mut(skip).1;
        let len = match starts.get(i + 1) {
            Some(&next) => (next - start).min(tail.len()),
            None => tail.len(),
        };
        let (piece, next) = tail.split_at_mut(len);
        pieces.push(piece);
        rest = next;
        consumed = start + len;
    }
    pieces
}
