//! Logs: human text (the default) or one JSON object per line (`--log-format json`), always on
//! stderr. The JSON shape is what Loki and Elasticsearch pipelines expect without a parser of
//! their own: `timestamp` (RFC 3339, UTC), `level`, `target`, `message` and the event's fields
//! at the top level, plus the span the event ran in.

use std::sync::OnceLock;

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format this process logs in (child processes are started with the same).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Install the subscriber. `RUST_LOG` overrides `default`.
pub fn init(format: LogFormat, default: &str) {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
