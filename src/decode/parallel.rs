//! Helper threads for the decoders whose input splits into independent jobs (xz blocks whose
//! headers carry their sizes, zstd frames, bzip2 blocks), with results taken in input order.
//!
//! One [`Crew`] belongs to one decoder, which is its leader: the leader parses the container,
//! cuts jobs and [`submit`](Crew::submit)s them; helpers run them, each on its own state (a
//! liblzma or libzstd context reused from job to job); the leader [`take`](Crew::take)s the
//! results in the order it submitted the jobs. While it waits for the next result, the leader
//! runs a queued job itself, so one helper plus the leader make two decoders.
//!
//! The leader bounds the jobs in flight (it counts [`pending`](Crew::pending)), so memory
//! stays bounded. Each helper holds one budget token ([`crate::budget`]); a crew may take more
//! tokens later, up to its maximum, when others give theirs back. Dropping the crew stops it:
//! queued jobs are discarded, running ones see the stop flag, every helper is joined.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::budget::{self, Permit};

/// Decoded bytes (and their input) a decoder keeps in flight at most: blocks and frames larger
/// than half of this are decoded as they stream in, not in parallel.
pub(crate) const BUFFER_MAX: u64 = 128 << 20;

/// Jobs decode into their buffers this much at a time, checking the stop flag in between.
pub(crate) const OUTPUT_SLICE: usize = 1 << 20;

/// A job: decodes into the buffer it is lent (whose length it may change) and returns what the
/// leader needs to know. It should return early when the flag is set (the crew is stopping).
pub(crate) type Job<S, R> = Box<dyn FnOnce(&mut S, &mut Vec<u8>, &AtomicBool) -> R + Send>;

/// A finished job: its buffer and its result, or `None` if it panicked.
pub(crate) type Done<R> = (Vec<u8>, Option<R>);

struct Queue<S, R> {
    jobs: VecDeque<(u64, Job<S, R>)>,
    done: BTreeMap<u64, Done<R>>,
    /// Idle buffers, lent to jobs.
    free: Vec<Vec<u8>>,
}

struct Inner<S, R> {
    queue: Mutex<Queue<S, R>>,
    /// Signalled when a job is queued or the crew stops.
    work: Condvar,
    /// Signalled when a job is done.
    done: Condvar,
    stop: AtomicBool,
}

impl<S, R> Inner<S, R> {
    fn lock(&self) -> MutexGuard<'_, Queue<S, R>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs a job, turning a panic into `None`.
fn run<S, R>(job: Job<S, R>, state: &mut S, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<R> {
    catch_unwind(AssertUnwindSafe(|| job(state, buf, stop))).ok()
}

/// The helper threads of one decoder. See the module documentation.
pub(crate) struct Crew<S: Send + 'static, R: Send + 'static> {
    inner: Arc<Inner<S, R>>,
    threads: Vec<JoinHandle<()>>,
    /// One token per helper.
    tokens: Vec<Permit>,
    max_helpers: usize,
    new_state: fn() -> S,
    name: &'static str,
    /// The leader's own state, for the jobs it runs itself.
    local: S,
    next: u64,
    head: u64,
}

impl<S: Send + 'static, R: Send + 'static> Crew<S, R> {
    /// A crew with one helper per token of `permit` (maybe none: the leader then runs the
    /// jobs itself), growing to at most `max_helpers` when the budget allows; `None` when
    /// `max_helpers` is 0 (the decoder then decodes alone, sequentially). `new_state` makes
    /// each thread's state.
    pub(crate) fn new(
        permit: Permit,
        max_helpers: usize,
        new_state: fn() -> S,
        name: &'static str,
    ) -> Option<Self> {
        let mut crew = Crew {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    done: BTreeMap::new(),
                    free: Vec::new(),
                }),
                work: Condvar::new(),
                done: Condvar::new(),
                stop: AtomicBool::new(false),
            }),
            threads: Vec::new(),
            tokens: Vec::new(),
            max_helpers,
            new_state,
            name,
            local: new_state(),
            next: 0,
            head: 0,
        };
        let mut permit = permit;
        let extra = permit.count().saturating_sub(max_helpers);
        drop(permit.split(extra));
        while permit.count() > 0 {
            crew.spawn(permit.split(1));
        }
        (max_helpers > 0).then_some(crew)
    }

    /// Starts one helper holding `token`; gives the token back if the thread cannot start.
    fn spawn(&mut self, token: Permit) {
        let inner = Arc::clone(&self.inner);
        let new_state = self.new_state;
        let name = format!("diffid-{}-{}", self.name, self.threads.len() + 1);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || helper(&inner, new_state));
        if let Ok(handle) = spawned {
            self.threads.push(handle);
            self.tokens.push(token);
        }
    }

    /// Helper threads running now.
    #[cfg(test)]
    pub(crate) fn helpers(&self) -> usize {
        self.threads.len()
    }

    /// Decoders working on jobs: the helpers and the leader.
    pub(crate) fn decoders(&self) -> usize {
        self.threads.len() + 1
    }

    /// Jobs submitted whose results have not been taken.
    pub(crate) fn pending(&self) -> usize {
        (self.next - self.head) as usize
    }

    /// Queues a job. Takes one more helper from the budget if jobs are waiting and the crew
    /// is below its maximum.
    pub(crate) fn submit(&mut self, job: Job<S, R>) {
        let waiting = {
            let mut q = self.inner.lock();
            q.jobs.push_back((self.next, job));
            q.jobs.len()
        };
        self.next += 1;
        self.inner.work.notify_one();
        if waiting > 1 && self.threads.len() < self.max_helpers {
            let token = budget::acquire(1);
            if token.count() == 1 {
                self.spawn(token);
            }
        }
    }

    /// The result of the oldest job not taken yet, waiting for it (and meanwhile running
    /// queued jobs on this thread); `None` when nothing is pending.
    pub(crate) fn take(&mut self) -> Option<Done<R>> {
        if self.pending() == 0 {
            return None;
        }
        let mut q = self.inner.lock();
        loop {
            if let Some(done) = q.done.remove(&self.head) {
                self.head += 1;
                return Some(done);
            }
            if let Some((seq, job)) = q.jobs.pop_front() {
                let mut buf = q.free.pop().unwrap_or_default();
                drop(q);
                let result = run(job, &mut self.local, &mut buf, &self.inner.stop);
                q = self.inner.lock();
                q.done.insert(seq, (buf, result));
                continue;
            }
            q = self.inner.done.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The result of the oldest job not taken yet if it is done, without waiting.
    pub(crate) fn try_take(&mut self) -> Option<Done<R>> {
        if self.pending() == 0 {
            return None;
        }
        let done = self.inner.lock().done.remove(&self.head)?;
        self.head += 1;
        Some(done)
    }

    /// Drops the results of the `n` oldest jobs not taken yet: queued ones are not run,
    /// running ones are waited for.
    pub(crate) fn discard(&mut self, n: usize) {
        let n = n.min(self.pending());
        let mut q = self.inner.lock();
        for _ in 0..n {
            let seq = self.head;
            self.head += 1;
            if let Some(at) = q.jobs.iter().position(|(s, _)| *s == seq) {
                q.jobs.remove(at);
                continue;
            }
            loop {
                if let Some((buf, _)) = q.done.remove(&seq) {
                    if q.free.len() < self.max_helpers + 2 {
                        q.free.push(buf);
                    }
                    break;
                }
                q = self.inner.done.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Gives a buffer back for later jobs.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        let mut q = self.inner.lock();
        if q.free.len() < self.max_helpers + 2 {
            q.free.push(buf);
        }
    }
}

fn helper<S, R>(inner: &Inner<S, R>, new_state: fn() -> S) {
    let mut state = None;
    let mut q = inner.lock();
    loop {
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let Some((seq, job)) = q.jobs.pop_front() else {
            q = inner.work.wait(q).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let mut buf = q.free.pop().unwrap_or_default();
        drop(q);
        let state = state.get_or_insert_with(new_state);
        let result = run(job, state, &mut buf, &inner.stop);
        q = inner.lock();
        q.done.insert(seq, (buf, result));
        inner.done.notify_all();
    }
}

impl<S: Send + 'static, R: Send + 'static> Drop for Crew<S, R> {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        {
            let mut q = self.inner.lock();
            q.jobs.clear();
            q.done.clear();
        }
        self.inner.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The tokens go back with `self.tokens`.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crew(helpers: usize) -> Option<Crew<u64, u64>> {
        // Not from the budget: these tests must not depend on what other tests hold.
        let permit = Permit::for_tests(helpers);
        Crew::new(permit, helpers, || 0, "test")
    }

    #[test]
    fn results_come_in_order() {
        let mut c = crew(3).unwrap();
        assert_eq!(c.helpers(), 3);
        let mut expected = Vec::new();
        for i in 0..50u64 {
            c.submit(Box::new(move |calls: &mut u64, buf: &mut Vec<u8>, _| {
                *calls += 1;
                // Later jobs finish sooner.
                std::thread::sleep(std::time::Duration::from_micros(50 * (50 - i)));
                buf.clear();
                buf.extend_from_slice(&i.to_le_bytes());
                i * 2
            }));
            expected.push(i);
            if c.pending() > 6 {
                let (buf, r) = c.take().unwrap();
                let want = expected.remove(0);
                assert_eq!(buf, want.to_le_bytes());
                assert_eq!(r, Some(want * 2));
                c.recycle(buf);
            }
        }
        while let Some((buf, r)) = c.take() {
            let want = expected.remove(0);
            assert_eq!(buf, want.to_le_bytes());
            assert_eq!(r, Some(want * 2));
        }
        assert!(expected.is_empty());
        assert_eq!(c.pending(), 0);
        assert!(c.take().is_none() && c.try_take().is_none());
    }

    #[test]
    fn a_panicking_job_gives_none() {
        let mut c = crew(1).unwrap();
        c.submit(Box::new(|_, _, _| panic!("job panics")));
        c.submit(Box::new(|_, _, _| 7));
        assert!(c.take().unwrap().1.is_none());
        assert_eq!(c.take().unwrap().1, Some(7));
    }

    #[test]
    fn dropping_stops_running_jobs() {
        use std::sync::atomic::AtomicUsize;
        let started = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        let mut c = crew(2).unwrap();
        for _ in 0..10 {
            let (started, stopped) = (Arc::clone(&started), Arc::clone(&stopped));
            c.submit(Box::new(move |_, _, stop: &AtomicBool| {
                started.fetch_add(1, Ordering::AcqRel);
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                stopped.fetch_add(1, Ordering::AcqRel);
                0
            }));
        }
        // Wait (up to a generous deadline) until a helper runs a job.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while started.load(Ordering::Acquire) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(c);
        // The drop joined the helpers: every job that started saw the stop flag and ended.
        let (s, e) = (
            started.load(Ordering::Acquire),
            stopped.load(Ordering::Acquire),
        );
        assert!(s >= 1, "no job ran");
        assert_eq!(s, e, "a running job was not stopped");
        // Nothing runs after the drop returned.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            started.load(Ordering::Acquire),
            s,
            "a job started after the drop"
        );
    }

    #[test]
    fn discarded_jobs_do_not_come_back() {
        let mut c = crew(1).unwrap();
        for i in 0..20u64 {
            c.submit(Box::new(move |_, _, _| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                i
            }));
        }
        assert_eq!(c.take().unwrap().1, Some(0));
        c.discard(10);
        assert_eq!(c.take().unwrap().1, Some(11));
        c.discard(100);
        assert_eq!(c.pending(), 0);
        c.submit(Box::new(|_, _, _| 99));
        assert_eq!(c.take().unwrap().1, Some(99));
    }

    #[test]
    fn no_helper_no_crew() {
        assert!(crew(0).is_none());
    }
}
