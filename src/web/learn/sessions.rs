//! The lessons being played on `/learn`: one [`Run`] per session, each with
//! its own private hub on a fresh database.
//!
//! Every session costs a hub (a listener, a SQLite file, a few tasks), so
//! the map is capped, and a place is reserved (under the map's lock)
//! before the hub starts: concurrent starts cannot pass the cap. When the
//! map is full, a new session closes the least recently used idle session
//! of the same client address, never anyone else's; with none, the start
//! is refused. A session ends when its client ends it (its id is the
//! key), when its run finishes, or when nobody touched it for
//! [`IDLE_TIMEOUT`] (a sweep). A session whose step is running is never
//! closed under it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::scenario::runner::Run;

/// A session nobody touched for this long is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How often the background sweep looks for idle sessions.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One learner's lesson.
#[derive(Debug)]
pub(crate) struct Session {
    /// The scenario's slug, e.g. `03-rooms-join-and-leave`.
    pub slug: String,
    /// The client address that started it: only its own new sessions may
    /// close it to make room.
    owner: IpAddr,
    /// Held for a whole step, so two clicks on "Run this step" take turns
    /// instead of interleaving; `None` once the run has finished.
    run: tokio::sync::Mutex<Option<Run>>,
    /// When a request last used the session: idle expiry and eviction order.
    last_used: Mutex<Instant>,
}

impl Session {
    fn new(slug: String, owner: IpAddr, run: Run) -> Self {
        Self {
            slug,
            owner,
            run: tokio::sync::Mutex::new(Some(run)),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// The run, for one step at a time (waits while another step runs).
    pub(crate) async fn run(&self) -> tokio::sync::MutexGuard<'_, Option<Run>> {
        self.run.lock().await
    }

    /// True while a step runs (the run is locked).
    fn busy(&self) -> bool {
        self.run.try_lock().is_err()
    }

    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn last_used(&self) -> Instant {
        *lock(&self.last_used)
    }

    /// Stops the session's hub (after a running step, if any, has ended).
    pub(crate) async fn finish(&self) {
        let run = self.run.lock().await.take();
        if let Some(run) = run {
            run.finish().await;
        }
    }
}

/// A std mutex whose holder panicked still guards consistent data here
/// (plain inserts, removes and instants), so carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The session map could not take one more.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many lessons are being played at once ({cap} at most); try again in a moment")]
pub(crate) struct Full {
    pub cap: usize,
}

/// The sessions of one hub.
#[derive(Debug)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Places promised to starts whose hub is still starting, per owner
    /// (counted with the map, under its lock).
    reserved: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
    idle: Duration,
    /// Set once the background sweep runs (started by the first session,
    /// so hubs nobody learns on, like the runner's own, start no task).
    sweeping: std::sync::Once,
}

/// What the eviction choice needs to know of a session.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    id: &'a str,
    last_used: Instant,
    busy: bool,
}

/// The session to close to make room: the least recently used idle one.
fn least_recently_used<'a>(candidates: impl IntoIterator<Item = Candidate<'a>>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| !c.busy)
        .min_by_key(|c| c.last_used)
        .map(|c| c.id)
}

/// The sessions idle for longer than `idle` at `now` (busy ones never are).
fn expired<'a>(
    candidates: impl IntoIterator<Item = Candidate<'a>>,
    now: Instant,
    idle: Duration,
) -> Vec<&'a str> {
    candidates
        .into_iter()
        .filter(|c| !c.busy && now.saturating_duration_since(c.last_used) >= idle)
        .map(|c| c.id)
        .collect()
}

/// A place in the session map, held while a session's hub starts; given
/// back if the start fails (dropped unused).
#[derive(Debug)]
pub(crate) struct Reservation {
    sessions: Arc<Sessions>,
    owner: IpAddr,
    used: bool,
}

impl Reservation {
    /// Gives the place back (once).
    fn release(&mut self) {
        if std::mem::replace(&mut self.used, true) {
            return;
        }
        let mut reserved = lock(&self.sessions.reserved);
        if let Some(count) = reserved.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                reserved.remove(&self.owner);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// Stops the hubs of sessions taken out of the map, off the request path.
fn finish_in_background(closed: Vec<Arc<Session>>, why: &'static str) {
    for session in closed {
        tracing::info!(scenario = %session.slug, why, "closing a lesson session");
        tokio::spawn(async move { session.finish().await });
    }
}

impl Sessions {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            reserved: Mutex::new(HashMap::new()),
            cap,
            idle: IDLE_TIMEOUT,
            sweeping: std::sync::Once::new(),
        }
    }

    /// How many sessions are open.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Reserves a place for a session of `owner` before its hub starts,
    /// or refuses with [`Full`]. At the cap, the owner's own least
    /// recently used idle session is closed to make room; nobody else's
    /// ever is.
    pub(crate) fn reserve(self: &Arc<Self>, owner: IpAddr) -> Result<Reservation, Full> {
        let full = Full { cap: self.cap };
        if self.cap == 0 {
            return Err(full);
        }
        let mut closed = Vec::new();
        let outcome = {
            let mut map = lock(&self.map);
            let mut reserved = lock(&self.reserved);
            let pending: usize = reserved.values().sum();
            let must_close = map.len() + pending >= self.cap;
            let room = if must_close {
                let victim = least_recently_used(map.iter().filter(|(_, s)| s.owner == owner).map(
                    |(id, s)| Candidate {
                        id,
                        last_used: s.last_used(),
                        busy: s.busy(),
                    },
                ))
                .map(str::to_owned);
                match victim.and_then(|id| map.remove(&id)) {
                    Some(old) => {
                        closed.push(old);
                        true
                    }
                    None => false,
                }
            } else {
                true
            };
            if room {
                *reserved.entry(owner).or_default() += 1;
                Ok(Reservation {
                    sessions: self.clone(),
                    owner,
                    used: false,
                })
            } else {
                Err(full)
            }
        };
        finish_in_background(closed, "its owner started another");
        outcome
    }

    /// Adds a session for `run` in the place `reservation` holds.
    pub(crate) fn insert(
        self: &Arc<Self>,
        mut reservation: Reservation,
        slug: &str,
        run: Run,
    ) -> String {
        self.start_sweeping();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let session = Arc::new(Session::new(slug.to_owned(), reservation.owner, run));
        let mut map = lock(&self.map);
        reservation.release();
        map.insert(id.clone(), session);
        id
    }

    /// The session `id`, marked as used now.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = lock(&self.map).get(id).cloned()?;
        session.touch();
        Some(session)
    }

    /// Takes the session out of the map; the caller finishes it.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.map).remove(id)
    }

    /// Closes the sessions idle for too long.
    pub(crate) fn sweep(&self) {
        let closed: Vec<Arc<Session>> = {
            let mut map = lock(&self.map);
            let ids: Vec<String> = expired(
                map.iter().map(|(id, s)| Candidate {
                    id,
                    last_used: s.last_used(),
                    busy: s.busy(),
                }),
                Instant::now(),
                self.idle,
            )
            .into_iter()
            .map(str::to_owned)
            .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        finish_in_background(closed, "idle");
    }

    /// Starts the periodic sweep once; it ends when the sessions are dropped
    /// (the hub stopped), since it holds them only weakly.
    fn start_sweeping(self: &Arc<Self>) {
        self.sweeping.call_once(|| {
            let sessions: Weak<Self> = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(SWEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(sessions) = sessions.upgrade() else {
                        break;
                    };
                    sessions.sweep();
                }
            });
        });
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        let map = std::mem::take(self.map.get_mut().unwrap_or_else(PoisonError::into_inner));
        // A runtime is gone only when the whole process ends; then the
        // hubs end with it.
        if tokio::runtime::Handle::try_current().is_ok() {
            finish_in_background(map.into_values().collect(), "the hub stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moment far enough after a real `Instant` that going back never underflows.
    fn now() -> Instant {
        Instant::now() + Duration::from_secs(10_000)
    }

    fn candidate(id: &str, age_s: u64, busy: bool, now: Instant) -> Candidate<'_> {
        Candidate {
            id,
            last_used: now - Duration::from_secs(age_s),
            busy,
        }
    }

    #[test]
    fn the_least_recently_used_idle_session_makes_room() {
        let now = now();
        let all = [
            candidate("old-but-busy", 90, true, now),
            candidate("old", 60, false, now),
            candidate("new", 1, false, now),
        ];
        assert_eq!(least_recently_used(all), Some("old"));
        let busy = [candidate("a", 60, true, now), candidate("b", 1, true, now)];
        assert_eq!(least_recently_used(busy), None);
    }

    #[test]
    fn sessions_idle_past_the_timeout_expire_unless_busy() {
        let now = now();
        let idle = Duration::from_secs(900);
        let all = [
            candidate("stale", 901, false, now),
            candidate("stale-but-stepping", 2000, true, now),
            candidate("fresh", 10, false, now),
        ];
        assert_eq!(expired(all, now, idle), vec!["stale"]);
    }
}
