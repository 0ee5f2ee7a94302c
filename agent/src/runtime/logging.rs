//! The agent's own log output, with a level that a config reload changes live
//! (`tracing_subscriber::reload`). `RUST_LOG`, when set, wins over `log.level` at start and on
//! every reload, so an operator debugging a node keeps the filter they asked for.

use runnel_config::{Config, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log filter of the running process.
pub struct LogLevel {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    from_env: bool,
}

/// A checked filter for [`LogLevel::apply`].
pub struct NewLevel(EnvFilter);

impl LogLevel {
    /// Install the global subscriber (JSON or text to stderr) at `log.level`.
    pub fn init(cfg: &Config) -> LogLevel {
        let env = EnvFilter::try_from_default_env().ok();
        let from_env = env.is_some();
        let filter = env.unwrap_or_else(|| EnvFilter::new(&cfg.log.level));
        let (filter, handle) = reload::Layer::new(filter);
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        let installed = match cfg.log.format {
            LogFormat::Json => Registry::default().with(filter).with(fmt.json()).try_init(),
            LogFormat::Text => Registry::default().with(filter).with(fmt).try_init(),
        };
        LogLevel {
            handle: installed.is_ok().then_some(handle),
            from_env,
        }
    }

    /// Check a `log.level` value (a level or a filter directive).
    pub fn prepare(level: &str) -> Result<NewLevel, String> {
        EnvFilter::try_new(level)
            .map(NewLevel)
            .map_err(|e| format!("log.level: {level:?} is not a level or filter directive: {e}"))
    }

    /// Switch to a checked level (ignored while `RUST_LOG` is set).
    pub fn apply(&self, level: NewLevel) {
        if self.from_env {
            tracing::info!("log.level changed but RUST_LOG is set and stays in force");
            return;
        }
        if let Some(h) = &self.handle {
            if let Err(e) = h.reload(level.0) {
                tracing::warn!(error = %e, "cannot change the log level");
            }
        }
    }
}
