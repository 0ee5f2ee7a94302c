//! The sink's bad weather: at random moments the proxy is told to answer the next bulk
//! requests with 429 or a 5xx, to reset the connection, to stall past the agent's request
//! timeout (the documents land late, so the retry meets 409s), to answer 200 with a truncated,
//! empty or short body after forwarding, to fail single items, or to be down for a while.

use crate::proxy::{Fault, State};
use crate::rng::Rng;
use crate::server::FaultCounts;
use crate::stop::Stop;
use std::sync::{Arc, Mutex, MutexGuard};

/// Scripted faults waiting in the proxy at most (so they stay near the moment they were drawn).
const MAX_QUEUED: usize = 6;

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inject faults until `stop`; returns what was injected by kind.
pub fn inject(seed: u64, proxy: &Arc<Mutex<State>>, stop: &Stop) -> FaultCounts {
    let mut r = Rng::fork(seed, "faults");
    let mut n = FaultCounts::new();
    while !stop.pause(r.millis(300, 2_500)) {
        let roll = r.range(0, 99);
        if roll < 88 && lock(proxy).script.len() >= MAX_QUEUED {
            continue;
        }
        let (kind, faults): (&'static str, Vec<Fault>) = match roll {
            0..=19 => ("429", vec![Fault::Status(429); r.range(1, 3) as usize]),
            20..=39 => {
                let s = [500, 502, 503, 504][r.range(0, 3) as usize];
                ("5xx", vec![Fault::Status(s); r.range(1, 3) as usize])
            }
            40..=51 => ("reset", vec![Fault::Reset]),
            52..=63 => ("stall", vec![Fault::Delay(r.millis(500, 4_000))]),
            64..=75 => {
                let f =
                    [Fault::Truncated, Fault::Empty, Fault::MissingItem][r.range(0, 2) as usize];
                ("bad answer after forwarding", vec![f])
            }
            76..=87 => {
                let every = if r.chance(0.4) {
                    0
                } else {
                    r.range(5, 17) as usize
                };
                lock(proxy).item_fault_every = every;
                ("item faults toggled", Vec::new())
            }
            _ => {
                lock(proxy).down = true;
                *n.entry("outage").or_default() += 1;
                let down_for = r.millis(2_000, 8_000);
                let stopped = stop.pause(down_for);
                lock(proxy).down = false;
                if stopped {
                    break;
                }
                continue;
            }
        };
        *n.entry(kind).or_default() += 1;
        lock(proxy).script.extend(faults);
    }
    let mut s = lock(proxy);
    s.script.clear();
    s.item_fault_every = 0;
    s.down = false;
    n
}
