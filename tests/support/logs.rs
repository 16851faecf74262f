//! The in-process bridge's logs, kept per test and printed when that test fails.
//!
//! A bridge run in-process logs through the test binary's global `tracing` subscriber, where
//! parallel tests would mix their lines (and libtest would not show them). [`bridge_span`] makes
//! the span a test's bridge runs in; the bridge's supervisor spawns every task inside the span it
//! was spawned from, so each line can be traced back to its test. A panic hook prints the failing
//! test's lines, the last [`KEEP`] of them, after the panic message.

use std::{
    collections::{HashMap, VecDeque},
    fmt::Write as _,
    sync::{Mutex, OnceLock},
    time::SystemTime,
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{EnvFilter, Layer, layer::Context, prelude::*, registry::LookupSpan};

/// How many lines of a test's bridge log are kept (the oldest go first).
const KEEP: usize = 400;

type Lines = HashMap<String, VecDeque<String>>;

fn lines() -> &'static Mutex<Lines> {
    static LINES: OnceLock<Mutex<Lines>> = OnceLock::new();
    LINES.get_or_init(Default::default)
}

/// The key a test's lines are kept under: libtest runs each test on a thread named after it.
fn current_test() -> String {
    std::thread::current().name().unwrap_or("main").to_owned()
}

/// The span to run a test's bridge in; installs the capture on first use.
pub fn bridge_span() -> tracing::Span {
    install();
    // Under the bridge's target, so the filter keeps it.
    tracing::info_span!(target: "slack_bridge::test", "test", name = current_test().as_str())
}

fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let filter = EnvFilter::try_from_env("TEST_BRIDGE_LOG")
            .unwrap_or_else(|_| EnvFilter::new("slack_bridge=debug,warn"));
        // Another subscriber set first (a test of its own) keeps the capture off, visibly.
        if tracing_subscriber::registry()
            .with(Capture.with_filter(filter))
            .try_init()
            .is_err()
        {
            eprintln!("bridge logs are not captured: a global tracing subscriber was already set");
        }
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            let test = current_test();
            let kept = lines().lock().unwrap().remove(&test);
            if let Some(kept) = kept {
                let mut out = format!("---- the bridge's log in {test} (last {KEEP} lines) ----\n");
                for l in kept {
                    out.push_str(&l);
                    out.push('\n');
                }
                eprint!("{out}");
            }
        }));
    });
}

/// The test a span belongs to, stored in the span when it is made.
struct TestName(String);

struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "test" {
            return;
        }
        let mut v = Fields::default();
        attrs.record(&mut v);
        if let (Some(span), Some(name)) = (ctx.span(id), v.name) {
            span.extensions_mut().insert(TestName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut test = None;
        let mut path = Vec::new();
        for span in scope {
            if let Some(t) = span.extensions().get::<TestName>() {
                test = Some(t.0.clone());
                break;
            }
            path.push(span.name());
        }
        let Some(test) = test else { return };
        let mut v = Fields::default();
        event.record(&mut v);
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let meta = event.metadata();
        let secs = since.as_secs() % 86_400;
        let mut line = format!(
            "{:02}:{:02}:{:02}.{:03} {:>5} {}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            since.subsec_millis(),
            meta.level(),
            meta.target()
        );
        path.reverse();
        if !path.is_empty() {
            let _ = write!(line, " [{}]", path.join(":"));
        }
        let _ = write!(line, " {}{}", v.message, v.rest);
        let mut all = lines().lock().unwrap();
        let kept = all.entry(test).or_default();
        if kept.len() == KEEP {
            kept.pop_front();
        }
        kept.push_back(line);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    name: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "name" => self.name = Some(value.to_owned()),
            f => {
                let _ = write!(self.rest, " {f}={value:?}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            f => {
                let _ = write!(self.rest, " {f}={value:?}");
            }
        }
    }
}
