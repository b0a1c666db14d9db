//! The log output of the broker and quorum processes, on standard error:
//! `TIDEMARK_LOG` filters it (tracing's `EnvFilter` syntax, e.g.
//! `info,tidemark_broker::net=debug`), `TIDEMARK_LOG_FORMAT=json` turns
//! each event into one JSON object per line for log shippers, and colour
//! codes are written only to a terminal (never to journald, a file or a
//! pipe) and never with `NO_COLOR` set. Set up once, on the main thread,
//! before any other thread starts.
use std::io::IsTerminal;

/// The environment variable that picks the format.
pub const FORMAT_VARIABLE: &str = "TIDEMARK_LOG_FORMAT";

/// How events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `text` (the default) or `json`.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!("{FORMAT_VARIABLE}={other}: expected text or json")),
        }
    }
}

/// Whether text output may carry ANSI colour codes.
fn colours_wanted(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the process's log output, filtered by `TIDEMARK_LOG` or
/// `default_filter`.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let format = std::env::var(FORMAT_VARIABLE).ok();
    let format = LogFormat::parse(format.as_deref()).unwrap_or_else(|message| {
        eprintln!("tidemark: {message}; logging as text");
        LogFormat::Text
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let no_color = std::env::var("NO_COLOR").ok();
            builder
                .with_ansi(colours_wanted(
                    std::io::stderr().is_terminal(),
                    no_color.as_deref(),
                ))
                .try_init()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        assert!(LogFormat::parse(Some("xml")).is_err());
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_wanted(true, None));
        assert!(colours_wanted(true, Some("")));
        assert!(!colours_wanted(true, Some("1")));
        assert!(!colours_wanted(false, None));
    }
}
