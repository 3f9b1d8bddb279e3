//! The process-wide worker budget: how many worker threads all computations together may run.
//!
//! Importers digest several layers at once. Without a shared limit, eight concurrent calls on
//! an eight-core machine would each start one pipeline plus one decoder thread per core:
//! some eighty threads competing for eight cores, each call slower and all of them together
//! no faster. So every worker thread diffid starts — pipeline stages and parallel decoders
//! alike — first takes a token from one budget shared by the whole process.
//!
//! **The bound:** at any moment the process runs at most [`workers()`] diffid worker threads,
//! plus the threads of the callers themselves (each call also works on its caller's thread).
//! The budget is the number of cores unless the environment variable `DIFFID_WORKERS` or
//! [`set_workers`] says otherwise.
//!
//! Taking tokens never waits: a call takes what is free, up to its own maximum
//! ([`Options::threads`](crate::Options::threads)), and makes do with that — fewer threads, and
//! with none at all the whole computation runs on the caller's thread. A call takes no more
//! tokens than its threads use (at most three for an input that does not decode in
//! parallel) and holds them until it ends; parallel decoders may take more later, when others have ended.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind, Result};

/// The environment variable that sets the budget (a positive integer) when the program does
/// not call [`set_workers`] first.
pub const WORKERS_ENV: &str = "DIFFID_WORKERS";

struct Budget {
    total: usize,
    free: AtomicUsize,
}

static BUDGET: OnceLock<Budget> = OnceLock::new();

fn budget() -> &'static Budget {
    BUDGET.get_or_init(|| Budget::new(default_workers()))
}

impl Budget {
    fn new(total: usize) -> Budget {
        Budget {
            total,
            free: AtomicUsize::new(total),
        }
    }
}

/// `DIFFID_WORKERS` if it is a positive integer, else the number of cores.
fn default_workers() -> usize {
    std::env::var(WORKERS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(cores)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sets the process-wide worker budget to `n` threads. Call it once, before the first
/// computation; it overrides `DIFFID_WORKERS`. Fails with
/// [`ErrorKind::InvalidArgument`] when `n` is 0, and with [`ErrorKind::Misuse`] when the
/// budget is already fixed (by an earlier call or by a computation that started) at another
/// value. Setting the value it already has succeeds.
pub fn set_workers(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "the worker budget must be at least 1",
        ));
    }
    let fixed = BUDGET.get_or_init(|| Budget::new(n));
    if fixed.total != n {
        return Err(Error::new(
            ErrorKind::Misuse,
            format!(
                "the worker budget is already fixed at {} threads; set it before the first \
                 digest",
                fixed.total
            ),
        ));
    }
    Ok(())
}

/// The process-wide worker budget: the most worker threads diffid runs at once, over all
/// computations. Fixes it (from `DIFFID_WORKERS` or the number of cores) if nothing did yet.
pub fn workers() -> usize {
    budget().total
}

/// Tokens taken from the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    count: usize,
    /// The tokens came from the budget (false only for tests' permits).
    pooled: bool,
}

impl Permit {
    /// A permit holding no token.
    pub(crate) fn none() -> Permit {
        Permit {
            count: 0,
            pooled: true,
        }
    }

    /// A permit of `n` tokens that do not come from the process budget, so that a test can
    /// count on its threads whatever other tests hold.
    #[cfg(test)]
    pub(crate) fn for_tests(n: usize) -> Permit {
        Permit {
            count: n,
            pooled: false,
        }
    }

    /// How many tokens (threads) this permit holds.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Moves up to `n` of this permit's tokens into a new permit.
    pub(crate) fn split(&mut self, n: usize) -> Permit {
        let n = n.min(self.count);
        self.count -= n;
        Permit {
            count: n,
            pooled: self.pooled,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.count > 0 && self.pooled {
            budget().free.fetch_add(self.count, Ordering::AcqRel);
        }
    }
}

/// Takes up to `max` tokens, as many as are free, without waiting (possibly none).
pub(crate) fn acquire(max: usize) -> Permit {
    let free = &budget().free;
    let mut current = free.load(Ordering::Acquire);
    loop {
        let take = current.min(max);
        if take == 0 {
            return Permit::none();
        }
        match free.compare_exchange_weak(
            current,
            current - take,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                return Permit {
                    count: take,
                    pooled: true,
                };
            }
            Err(now) => current = now,
        }
    }
}

#[cfg(test)]
pub(crate) fn free_tokens() -> usize {
    budget().free.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The budget is process-wide and the tests of this crate run concurrently, so these
    // tests check relations that hold whatever the other tests hold at the time.

    #[test]
    fn permits_never_exceed_the_budget_and_come_back() {
        let total = workers();
        let a = acquire(usize::MAX);
        assert!(a.count() <= total);
        let b = acquire(usize::MAX);
        assert!(a.count() + b.count() <= total);
        let zero = acquire(0);
        assert_eq!(zero.count(), 0);
        drop((a, b, zero));
        assert!(free_tokens() <= total);
    }

    #[test]
    fn split_keeps_the_count() {
        let mut p = Permit::none();
        let q = p.split(3);
        assert_eq!((p.count(), q.count()), (0, 0));
        let mut p = acquire(2);
        let n = p.count();
        let q = p.split(1);
        assert_eq!(p.count() + q.count(), n);
    }

    #[test]
    fn set_workers_validates() {
        assert_eq!(
            set_workers(0).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let n = workers();
        set_workers(n).unwrap();
        assert_eq!(set_workers(n + 1).unwrap_err().kind(), ErrorKind::Misuse);
    }
}
