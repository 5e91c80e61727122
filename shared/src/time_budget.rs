//! The invocation's deadline, for work that can stop part-way and be finished by the next look.
//!
//! Lambda ends an invocation at its time-out: the event is retried and, twice timed out, goes to
//! the DLQ, with an error alarm, while nothing was wrong but the size of the work. Promote's
//! writes at scale are such work (one `PutParameter` per service and environment, 3 a second by
//! SSM's default): it stops before the deadline instead, and the schedule's next look writes the
//! rest (every write is decided anew from what the parameters hold, so nothing is written twice).
//! Outside an invocation (the CLI, tests without a budget) there is no deadline.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most kept free before the deadline: one write with the SDK's retries (backoff 1 s, 2 s,
/// 4 s, 8 s: 15 s at worst) and the response after it.
const MAX_RESERVE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy)]
struct Budget {
    deadline: Instant,
    /// A quarter of the invocation's time, at most `MAX_RESERVE`: a short time-out still leaves
    /// most of itself to the work.
    reserve: Duration,
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Runs `work` with `deadline` as the invocation's (none: no budget).
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => {
            let reserve = (deadline.saturating_duration_since(Instant::now()) / 4).min(MAX_RESERVE);
            BUDGET.scope(Budget { deadline, reserve }, work).await
        }
        None => work.await,
    }
}

/// Lambda's deadline (milliseconds since the epoch, `Lambda-Runtime-Deadline-Ms`) as an instant
/// of this process's clock; `None` when it is not a time this clock can place.
pub fn from_epoch_millis(deadline_ms: u64) -> Option<Instant> {
    let deadline = UNIX_EPOCH.checked_add(Duration::from_millis(deadline_ms))?;
    let left = deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Instant::now().checked_add(left)
}

/// Whether the invocation is into its reserve: stop starting work the next look can do (never,
/// without a budget).
pub fn running_out() -> bool {
    BUDGET
        .try_with(|budget| budget.deadline.saturating_duration_since(Instant::now()) <= budget.reserve)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_work_given_a_deadline_runs_out_and_the_reserve_scales_with_it() {
        assert!(!running_out());
        assert!(!within(None, async { running_out() }).await);
        // 60 s: a reserve of 15 s.
        let minute = Some(Instant::now() + Duration::from_secs(60));
        assert!(!within(minute, async { running_out() }).await);
        // Already past: out.
        assert!(within(Some(Instant::now()), async { running_out() }).await);
        // 3 s (infra's shortest time-out): a reserve of 0.75 s, so 2 s of work is still in.
        let short = Some(Instant::now() + Duration::from_secs(3));
        assert!(!within(short, async { running_out() }).await);
    }

    #[test]
    fn lambda_deadlines_land_on_this_clock() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        let deadline = from_epoch_millis(now_ms + 60_000).expect("placed");
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60), "{left:?}");
        // A deadline already past is now, not an error.
        let past = from_epoch_millis(now_ms.saturating_sub(5_000)).expect("placed");
        assert!(past <= Instant::now());
    }
}
