//! Follower wake-ups: a sync wakes only the followers of the sources it changed, and a
//! follower with nothing new sleeps without polling.
//!
//! The index calls its after-sync listener once per changed source; the listener looks the
//! source up here and bumps that source's `watch` channel. A source nobody follows costs one
//! map lookup per sync; its entry is dropped at the first sync after its last follower left.

use runnel_index::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The per-source wake-up channels.
#[derive(Default)]
pub struct Followers {
    by_source: Mutex<HashMap<String, watch::Sender<u64>>>,
    wakeups: AtomicU64,
    backstops: AtomicU64,
}

impl Followers {
    /// A registry fed by `store`'s after-sync listener.
    pub fn attach(store: &Store) -> Arc<Followers> {
        let f = Arc::new(Followers::default());
        let weak = Arc::downgrade(&f);
        store.add_listener(Arc::new(move |key: &str, next: u64| {
            if let Some(f) = weak.upgrade() {
                f.synced(key, next);
            }
        }));
        f
    }

    /// Called after a sync made records of `key` durable up to (not including) `next`.
    pub fn synced(&self, key: &str, next: u64) {
        let Ok(mut map) = self.by_source.lock() else {
            return;
        };
        let gone = match map.get(key) {
            Some(tx) if tx.receiver_count() == 0 => true,
            Some(tx) => {
                tx.send_replace(next);
                false
            }
            None => false,
        };
        if gone {
            map.remove(key);
        }
    }

    /// A receiver that changes whenever `key` gets durable records. Mark it seen before
    /// reading, so a sync that lands during the read is not missed.
    pub fn subscribe(&self, key: &str) -> watch::Receiver<u64> {
        match self.by_source.lock() {
            Ok(mut map) => map
                .entry(key.to_string())
                .or_insert_with(|| watch::channel(0).0)
                .subscribe(),
            // A poisoned map cannot wake anyone: the follower falls back to its backstop.
            Err(_) => watch::channel(0).1,
        }
    }

    /// Count one follower woken by a sync (the figure that shows idle followers stay asleep).
    pub fn woke(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one follower that re-read its source because its backstop timer ran out (no
    /// wake-up for a minute): the only work an idle follower does.
    pub fn backstop(&self) {
        self.backstops.fetch_add(1, Ordering::Relaxed);
    }

    /// Append the follower figures to a Prometheus page.
    pub fn render(&self, out: &mut String) {
        out.push_str(&format!(
            "# HELP runnel_http_follow_wakeups_total Followers woken by a sync of their source.\n\
             # TYPE runnel_http_follow_wakeups_total counter\n\
             runnel_http_follow_wakeups_total {}\n\
             # HELP runnel_http_follow_backstops_total Follower re-reads after a minute without a wake-up (idle followers' only work).\n\
             # TYPE runnel_http_follow_backstops_total counter\n\
             runnel_http_follow_backstops_total {}\n\
             # HELP runnel_http_followed_sources Sources with at least one follower.\n\
             # TYPE runnel_http_followed_sources gauge\n\
             runnel_http_followed_sources {}\n",
            self.wakeups.load(Ordering::Relaxed),
            self.backstops.load(Ordering::Relaxed),
            self.sources_followed()
        ));
    }

    /// Sources with at least one follower registered (for tests and status).
    pub fn sources_followed(&self) -> usize {
        self.by_source
            .lock()
            .map(|m| m.values().filter(|tx| tx.receiver_count() > 0).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_followers_of_the_changed_source_are_woken() {
        let f = Followers::default();
        let mut a = f.subscribe("a");
        let mut b = f.subscribe("b");
        a.borrow_and_update();
        b.borrow_and_update();
        f.synced("a", 7);
        assert!(a.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), 7);
        assert!(!b.has_changed().unwrap());
        drop(a);
        f.synced("a", 8);
        assert_eq!(f.sources_followed(), 1);
        assert!(f.by_source.lock().unwrap().get("a").is_none());
    }
}
