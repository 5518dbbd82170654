//! Running work on a fixed set of slots (the dump sockets), several items at once, with the
//! results in the items' order. Pure scheduling, no I/O, so it can be tested on its own.

use std::future::Future;

use futures::{Stream, StreamExt};

/// `f(slot, item)` for every item, at most `width` at once, results in item order.
///
/// Item `i` runs on slot `i % width`. The items in flight are always `width` consecutive ones
/// (a buffered stream starts the next item only when fewer than `width` are pending), so no
/// two of them share a slot: each slot runs one item at a time, and none waits on another.
/// `width` 0 is taken as 1.
pub fn pipelined<T, R, F, Fut>(
    items: impl IntoIterator<Item = T>,
    width: usize,
    mut f: F,
) -> impl Stream<Item = R>
where
    F: FnMut(usize, T) -> Fut,
    Fut: Future<Output = R>,
{
    let width = width.max(1);
    futures::stream::iter(items.into_iter().enumerate())
        .map(move |(i, item)| f(i % width, item))
        .buffered(width)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// Items that finish out of order still come back in order, and no slot ever has two in
    /// flight.
    #[tokio::test(start_paused = true)]
    async fn in_order_one_per_slot() {
        let busy = Arc::new(Mutex::new([false; 3]));
        let delays = [50u64, 10, 30, 5, 40, 1, 20, 15, 2, 60];
        let out: Vec<usize> = pipelined(delays.iter().enumerate(), 3, |slot, (i, &ms)| {
            let busy = busy.clone();
            async move {
                let was = std::mem::replace(&mut busy.lock().expect("busy")[slot], true);
                assert!(!was, "slot {slot} already busy");
                tokio::time::sleep(Duration::from_millis(ms)).await;
                busy.lock().expect("busy")[slot] = false;
                i
            }
        })
        .collect()
        .await;
        assert_eq!(out, (0..delays.len()).collect::<Vec<_>>());
    }

    /// `width` items really run at once: ten 10 ms items on 4 slots take 3 rounds.
    #[tokio::test(start_paused = true)]
    async fn width_at_once() {
        let start = tokio::time::Instant::now();
        let n = pipelined(0..10, 4, |_, _| {
            tokio::time::sleep(Duration::from_millis(10))
        })
        .count()
        .await;
        assert_eq!(n, 10);
        assert!(
            start.elapsed() < Duration::from_millis(40),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn zero_width_is_one() {
        let out: Vec<(usize, u8)> = pipelined([7u8, 8], 0, |slot, x| async move { (slot, x) })
            .collect()
            .await;
        assert_eq!(out, [(0, 7), (0, 8)]);
    }
}
