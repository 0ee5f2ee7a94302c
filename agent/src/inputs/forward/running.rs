//! The forward receiver as a part of the running agent: started from the config, replaced
//! by a reload (stop accepting, bind with the new settings; on failure the old settings are
//! bound again and the reload is refused), stopped at shutdown. Its counters outlive a
//! reload. Connections of a replaced receiver end after their current request; a chunk
//! stored but not acknowledged then is resent by the client and stored once.

use super::server::{ForwardServer, ForwardSettings};
use super::stats::ForwardStats;
use crate::ingest::Submitter;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The receiver slot: what runs now and with which settings.
pub struct ForwardInput {
    rt: tokio::runtime::Handle,
    submitter: Submitter,
    stats: Arc<ForwardStats>,
    current: Mutex<Option<(ForwardServer, ForwardSettings)>>,
}

impl ForwardInput {
    /// An input that runs its receiver on `rt`; nothing listens until [`ForwardInput::apply`].
    pub fn new(rt: tokio::runtime::Handle, submitter: Submitter) -> ForwardInput {
        ForwardInput {
            rt,
            submitter,
            stats: Arc::new(ForwardStats::default()),
            current: Mutex::new(None),
        }
    }

    /// The counters (for `/metrics`).
    pub fn stats(&self) -> &Arc<ForwardStats> {
        &self.stats
    }

    /// Check the settings of `cfg` (tag pattern, key and users files): `None` when disabled.
    pub fn prepare(cfg: &runnel_config::Config) -> Result<Option<ForwardSettings>, String> {
        if !cfg.inputs.forward.enabled {
            return Ok(None);
        }
        ForwardSettings::from_config(cfg).map(Some)
    }

    /// Run with `settings` (`None`: stop listening). Returns the TCP address listened on.
    /// Not on a runtime thread.
    pub fn apply(&self, settings: Option<ForwardSettings>) -> Result<Option<SocketAddr>, String> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let old = cur.take().map(|(server, s)| {
            self.rt.block_on(server.shutdown());
            s
        });
        let Some(new) = settings else {
            return Ok(None);
        };
        match self.start(new.clone()) {
            Ok(server) => {
                let addr = server.local_addr;
                *cur = Some((server, new));
                Ok(Some(addr))
            }
            Err(e) => {
                if let Some(old) = old {
                    match self.start(old.clone()) {
                        Ok(server) => *cur = Some((server, old)),
                        Err(e2) => tracing::error!(error = %e2,
                            "the forward input could not listen again with the running settings"),
                    }
                }
                Err(e)
            }
        }
    }

    fn start(&self, settings: ForwardSettings) -> Result<ForwardServer, String> {
        self.rt.block_on(ForwardServer::start(
            settings,
            self.submitter.clone(),
            self.stats.clone(),
        ))
    }

    /// The settings running now (to go back to when a later part of a reload fails).
    pub fn running_settings(&self) -> Option<ForwardSettings> {
        let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        cur.as_ref().map(|(_, s)| s.clone())
    }

    /// True when a listener task ended on its own (the supervisor ends the process).
    pub fn has_died(&self) -> bool {
        let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        cur.as_ref().is_some_and(|(s, _)| s.is_finished())
    }

    /// Stop listening (shutdown).
    pub fn shutdown(&self) {
        let _ = self.apply(None);
    }
}
