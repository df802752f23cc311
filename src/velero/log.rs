//! Velero's plugin log format: one JSON object per line on stderr, as Velero's own Go plugin
//! logger writes it (spec §6). The host parses `@level` and `@message` (strings, always),
//! keeps `logSource` because `@logSourceSetBy` is set, and copies every other key into the
//! backup's log as a field. No `@timestamp`: the host stamps lines itself.
//!
//! Lines stay below the host's 64 KiB line buffer: a longer line would reach the backup log
//! as unparsed debug fragments, so long values are cut and the cut is marked.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

/// The longest string value written into one field; the host reads lines of up to 64 KiB.
const MAX_VALUE_BYTES: usize = 16 * 1024;
/// The longest line written, leaving room below the host's 64 KiB line buffer.
const MAX_LINE_BYTES: usize = 60 * 1024;

/// Maps a `--log-level` value as Velero's flag accepts it to a filter.
/// Returns `None` for a value Velero itself would reject.
pub fn level_from_flag(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "error" | "fatal" | "panic" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// The `@level` string the host understands for a tracing level.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// A tracing layer writing Velero's plugin log lines to `W`.
pub struct VeleroLogLayer<W> {
    make_writer: W,
}

impl<W> VeleroLogLayer<W>
where
    W: Fn() -> Box<dyn Write> + Send + Sync + 'static,
{
    /// A layer that asks `make_writer` for a writer per line (stderr in production).
    pub fn new(make_writer: W) -> Self {
        VeleroLogLayer { make_writer }
    }
}

impl<S, W> Layer<S> for VeleroLogLayer<W>
where
    S: Subscriber,
    W: Fn() -> Box<dyn Write> + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = render_event(event);
        line.push(b'\n');
        // One write per line keeps lines whole; a closed stderr is nothing we can report.
        let _ = (self.make_writer)().write_all(&line);
    }
}

/// Which events reach the log: quiesce's own at `level`; nothing from the libraries beneath
/// (h2's frame-by-frame debug lines would flood the backup log, and their errors surface
/// through ours).
pub fn filter(level: LevelFilter) -> Targets {
    Targets::new()
        .with_target("quiesce", level)
        .with_target("velero_plugin_quiesce", level)
        .with_default(LevelFilter::OFF)
}

/// Installs the Velero log format on stderr as the process-wide subscriber.
pub fn init(level: LevelFilter) {
    let layer = VeleroLogLayer::new(|| Box::new(std::io::stderr()) as Box<dyn Write>);
    let subscriber = Registry::default().with(layer.with_filter(filter(level)));
    // Only fails if a subscriber is already set (tests): keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Renders one event as a JSON object (without the newline).
pub fn render_event(event: &Event<'_>) -> Vec<u8> {
    let meta = event.metadata();
    let mut fields = FieldCollector::default();
    event.record(&mut fields);
    let mut object = fields.fields;
    object.insert("@level".into(), Value::from(level_name(meta.level())));
    object.insert(
        "@message".into(),
        Value::from(fields.message.unwrap_or_default()),
    );
    object.insert("@logSourceSetBy".into(), Value::from("plugin"));
    if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
        object.insert("logSource".into(), Value::from(format!("{file}:{line}")));
    }
    let mut line = serde_json::to_vec(&Value::Object(object.clone())).unwrap_or_default();
    // Several long values can still add up past the host's buffer: cut them all shorter.
    let mut cap = MAX_VALUE_BYTES / 2;
    while line.len() > MAX_LINE_BYTES && cap >= 256 {
        for value in object.values_mut() {
            if let Value::String(text) = value {
                if text.len() > cap {
                    *text = cut(text, cap);
                }
            }
        }
        line = serde_json::to_vec(&Value::Object(object.clone())).unwrap_or_default();
        cap /= 2;
    }
    line
}

#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl FieldCollector {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(bounded(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(bounded(&value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(bounded(&format!("{value:?}"))));
    }
}

/// Cuts a value to [`MAX_VALUE_BYTES`] on a character boundary and says how much was cut.
fn bounded(value: &str) -> String {
    cut(value, MAX_VALUE_BYTES)
}

/// Bytes kept from the end of a cut value: where marks such as a hook's own
/// `[output truncated: …]` note stand.
const KEPT_TAIL_BYTES: usize = 96;

/// Cuts the middle out of `value` so it keeps at most `limit` bytes (plus the mark): its
/// beginning, and its last [`KEPT_TAIL_BYTES`], on character boundaries.
fn cut(value: &str, limit: usize) -> String {
    if value.len() <= limit {
        return value.to_owned();
    }
    let tail_len = KEPT_TAIL_BYTES.min(limit / 4);
    let mut head_end = limit - tail_len;
    while !value.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = value.len() - tail_len;
    while !value.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}… [truncated {} bytes] …{}",
        &value[..head_end],
        tail_start - head_end,
        &value[tail_start..]
    )
}

/// Velero log lines kept in memory instead of stderr: how tests (and anything else that wants
/// to read back what was logged) see exactly the lines the host would parse.
#[derive(Clone, Default)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl MemoryLog {
    /// Sends what this thread logs at `level` here, until the guard drops.
    pub fn install(&self, level: LevelFilter) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let layer = VeleroLogLayer::new(move || Box::new(sink.clone()) as Box<dyn Write>);
        tracing::subscriber::set_default(Registry::default().with(layer.with_filter(filter(level))))
    }

    /// The lines so far, each parsed as JSON (a line that is not JSON becomes a string value).
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::from(l)))
            .collect()
    }
}

impl Write for MemoryLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captures the lines a closure logs at `level`.
    fn capture(level: LevelFilter, f: impl FnOnce()) -> Vec<Value> {
        let log = MemoryLog::default();
        let guard = log.install(level);
        f();
        drop(guard);
        log.lines()
    }

    #[test]
    fn a_line_carries_the_keys_the_host_reads() {
        let lines = capture(LevelFilter::INFO, || {
            tracing::info!(hookCommand = "[/bin/true]", exitCode = 0, "Hook executed");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["@level"], "info");
        assert_eq!(line["@message"], "Hook executed");
        assert_eq!(line["@logSourceSetBy"], "plugin");
        assert_eq!(line["hookCommand"], "[/bin/true]");
        assert_eq!(line["exitCode"], 0);
        assert!(line["logSource"]
            .as_str()
            .unwrap()
            .starts_with("src/velero/log.rs:"));
        assert!(line.get("@timestamp").is_none());
        assert!(line.get("level").is_none());
    }

    #[test]
    fn every_level_is_a_name_the_host_knows() {
        let lines = capture(LevelFilter::TRACE, || {
            tracing::trace!("t");
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        });
        let levels: Vec<_> = lines
            .iter()
            .map(|l| l["@level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["trace", "debug", "info", "warn", "error"]);
    }

    #[test]
    fn lines_below_the_level_are_not_written() {
        let lines = capture(LevelFilter::WARN, || {
            tracing::info!("quiet");
            tracing::warn!("loud");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["@message"], "loud");
    }

    #[test]
    fn long_values_are_cut_so_the_line_fits_the_hosts_buffer() {
        let huge = "x".repeat(200 * 1024);
        let lines = capture(LevelFilter::INFO, || {
            tracing::info!(stdout = huge.as_str(), "Hook output");
        });
        let value = lines[0]["stdout"].as_str().unwrap();
        assert!(value.len() < 20 * 1024);
        assert!(value.contains(&format!(
            "[truncated {} bytes]",
            200 * 1024 - MAX_VALUE_BYTES
        )));
    }

    #[test]
    fn library_events_stay_out_of_the_log() {
        let lines = capture(LevelFilter::TRACE, || {
            tracing::debug!(target: "h2::codec", "send frame");
            tracing::error!(target: "hyper", "connection error");
            tracing::debug!("ours");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["@message"], "ours");
    }

    #[test]
    fn many_long_values_still_make_a_line_the_host_can_read() {
        let huge = "x".repeat(100 * 1024);
        let hostile = "\u{1b}[31m\0\n".repeat(20 * 1024);
        let lines = capture(LevelFilter::INFO, || {
            tracing::info!(
                a = huge.as_str(),
                b = huge.as_str(),
                c = huge.as_str(),
                d = huge.as_str(),
                e = huge.as_str(),
                hookCommand = hostile.as_str(),
                "{}",
                huge
            );
        });
        assert_eq!(lines.len(), 1, "one line, still valid JSON");
        let length = serde_json::to_vec(&lines[0]).unwrap().len();
        assert!(length <= MAX_LINE_BYTES, "{length} bytes");
        assert!(lines[0]["hookCommand"]
            .as_str()
            .unwrap()
            .contains("[truncated"));
    }

    #[test]
    fn a_cut_keeps_the_end_of_the_value_where_marks_stand() {
        let value = format!(
            "{}[output truncated: showing 10 of 99 bytes]",
            "a".repeat(40_000)
        );
        let cut_value = cut(&value, 1024);
        assert!(cut_value.starts_with("aaaa"));
        assert!(
            cut_value.ends_with("[output truncated: showing 10 of 99 bytes]"),
            "{cut_value}"
        );
        assert!(cut_value.len() < 1024 + 64);
    }

    #[test]
    fn cutting_respects_character_boundaries() {
        let s = "é".repeat(MAX_VALUE_BYTES); // two bytes each
        let cut = bounded(&s);
        assert!(cut.contains("[truncated"));
    }

    #[test]
    fn log_level_flag_values_map_like_velero() {
        assert_eq!(level_from_flag("warning"), Some(LevelFilter::WARN));
        assert_eq!(level_from_flag("WARN"), Some(LevelFilter::WARN));
        assert_eq!(level_from_flag("fatal"), Some(LevelFilter::ERROR));
        assert_eq!(level_from_flag("panic"), Some(LevelFilter::ERROR));
        assert_eq!(level_from_flag("trace"), Some(LevelFilter::TRACE));
        assert_eq!(level_from_flag("loud"), None);
    }
}
