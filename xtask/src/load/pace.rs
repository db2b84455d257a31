//! A shopper's pace: as fast as the shop answers (a closed loop, which finds
//! the shop's saturated rate and its tail there), or at an offered rate
//! (`--rate`), which asks "what is the tail at this many requests a second?".
//!
//! At an offered rate every request has a time it is due. A request sent
//! late because the one before it was still waiting is timed from when it
//! was due, not from when it was sent: otherwise a stall would delay the
//! requests behind it and hide their wait (coordinated omission, the error
//! `wrk2` corrects the same way). A request the shopper was ready for is
//! timed from when it was sent, so the timer's own lateness (tokio sleeps
//! to the millisecond) is not counted against the shop.
//!
//! A shopper is one browser: it waits for each answer before its next
//! request. At an offered rate it is a queue of its own, so with few
//! shoppers each one is busy most of the time and a slow checkout delays
//! the product pages behind it; with enough of them (each busy a small
//! part of the time) what is timed is the shop.

use std::time::Duration;

use tokio::time::Instant;

/// When each of one shopper's requests may start, and what its latency is
/// counted from.
#[derive(Debug)]
pub(super) struct Pace {
    /// `None`: closed loop.
    every: Option<Duration>,
    due: Instant,
}

impl Pace {
    /// Each request as soon as the one before it is answered.
    pub(super) fn closed_loop() -> Self {
        Self {
            every: None,
            due: Instant::now(),
        }
    }

    /// Shopper `index` of `shoppers`, which together offer `rate` requests a
    /// second from `start`: each shopper one request every `shoppers / rate`
    /// seconds, their turns spread evenly over that interval.
    pub(super) fn offered(rate: u32, shoppers: usize, index: usize, start: Instant) -> Self {
        let shoppers = u32::try_from(shoppers.max(1)).unwrap_or(u32::MAX);
        let index = u32::try_from(index).unwrap_or(0) % shoppers;
        let every = Duration::from_secs(1) * shoppers / rate.max(1);
        Self {
            every: Some(every),
            due: start + every * index / shoppers,
        }
    }

    /// Waits for the next request's turn and returns the instant its
    /// latency is counted from.
    pub(super) async fn turn(&mut self) -> Instant {
        let Some(every) = self.every else {
            return Instant::now();
        };
        let due = self.due;
        self.due += every;
        if Instant::now() >= due {
            // Behind: the wait since `due` is the shop's.
            return due;
        }
        tokio::time::sleep_until(due).await;
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn offered_turns_come_at_the_shoppers_share_of_the_rate() {
        let start = Instant::now();
        // 4 shoppers at 1,000 requests/s: one request each every 4 ms,
        // shopper 1 a millisecond after shopper 0.
        let mut pace = Pace::offered(1_000, 4, 1, start);
        assert_eq!(pace.turn().await, start + Duration::from_millis(1));
        assert_eq!(pace.turn().await, start + Duration::from_millis(5));
        assert_eq!(pace.turn().await, start + Duration::from_millis(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_request_is_timed_from_when_it_was_due() {
        let start = Instant::now();
        let mut pace = Pace::offered(100, 1, 0, start);
        assert_eq!(pace.turn().await, start);
        // The answer took 35 ms: the next three turns were due meanwhile.
        tokio::time::advance(Duration::from_millis(35)).await;
        assert_eq!(pace.turn().await, start + Duration::from_millis(10));
        assert_eq!(pace.turn().await, start + Duration::from_millis(20));
        assert_eq!(pace.turn().await, start + Duration::from_millis(30));
        // Caught up: the next one waits for its turn.
        assert_eq!(pace.turn().await, start + Duration::from_millis(40));
        assert_eq!(Instant::now(), start + Duration::from_millis(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_never_waits() {
        let start = Instant::now();
        let mut pace = Pace::closed_loop();
        tokio::time::advance(Duration::from_millis(7)).await;
        assert_eq!(pace.turn().await, start + Duration::from_millis(7));
        assert_eq!(Instant::now(), start + Duration::from_millis(7));
    }
}
