//! Hostile outside input for Hyperion's parsers, and the properties they keep on it.
//!
//! Study files, command-line overrides, durations, storage URLs and search spaces come from
//! users. Whatever they hold, the parser answers with a value or with an error that names what
//! was wrong (the file, the override, the text); it never panics. Each target here is a
//! generator paired with the check of that property.
//!
//! The generators are proptest strategies, so one definition serves two drivers: the property
//! tests (`tests/fuzz.rs` of `hyperion-config` and `hyperion-store`) run a few hundred cases per
//! `cargo test` and shrink a failure to a small input, and `bench/fuzz SECONDS`
//! (`hyperion-bench fuzz`) draws from the same strategies for as long as it is given. Most
//! inputs are mutations of valid files ([`seeds`], [`mutate`]): they get past the YAML or TOML
//! parser into the schema checks, where random bytes never go. A check returns `Err` when the
//! parser answered but broke its property; a panic is left to the driver to catch.

pub mod mutate;
pub mod seeds;

use std::fmt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use mutate::{NUMBERS, VALUES, mutated, mutation};
use seeds::{BASE_FILE, SPACES, STUDY_FILES};

/// A directory for the study files under test, with the files they import.
#[derive(Debug)]
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join(BASE_FILE.file), BASE_FILE.text).expect("write base.yaml");
        // The scripts the seeds run (examples and W&B files): they must exist to load.
        for script in ["a.py", "train.py", "tune_svc.py"] {
            std::fs::write(dir.path().join(script), "").expect("write a script");
        }
        Scratch(dir)
    }

    /// Writes `file` in the directory and returns its path.
    pub fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(file);
        std::fs::write(&path, bytes).expect("write a study file");
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// A study file to load: its name (the extension picks YAML or TOML) and its bytes.
#[derive(Clone)]
pub struct StudyInput {
    pub file: &'static str,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for StudyInput {
    /// As a Rust byte string, to paste into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} b\"{}\"", self.file, self.bytes.escape_ascii())
    }
}

/// Names for inputs that are not mutated seeds: the extension picks YAML or TOML.
#[rustfmt::skip]
const FILE_NAMES: &[&str] = &["study.yaml", "study.yml", "study.toml", "sweep.yaml", "study"];

/// Mutated seeds mostly; some arbitrary bytes and text.
pub fn study_file() -> impl Strategy<Value = StudyInput> {
    prop_oneof![
        8 => (select(STUDY_FILES), prop::collection::vec(mutation(), 1..8)).prop_map(
            |(seed, mutations)| StudyInput {
                file: seed.file,
                bytes: mutated(seed.text.as_bytes(), &mutations),
            }
        ),
        1 => (select(FILE_NAMES), prop::collection::vec(any::<u8>(), 0..512))
            .prop_map(|(file, bytes)| StudyInput { file, bytes }),
        1 => (select(FILE_NAMES), any::<String>()).prop_map(|(file, text)| StudyInput {
            file,
            bytes: text.into_bytes()
        }),
    ]
}

/// Loading never panics; an error starts with the file it is about (this one, or one it
/// imports) and its line, when given, is in that file.
pub fn check_load(scratch: &Scratch, input: &StudyInput) -> Result<(), String> {
    let path = scratch.write(input.file, &input.bytes);
    match hyperion_config::load(&path, &[]) {
        Ok(_) => Ok(()),
        Err(e) => names_the_file(&e, &path, &input.bytes),
    }
}

fn names_the_file(
    e: &hyperion_config::ConfigError,
    path: &Path,
    bytes: &[u8],
) -> Result<(), String> {
    let shown = e.to_string();
    let imported = e.file != path && bytes.windows(7).any(|w| w == b"imports");
    if !(e.file == path || imported) || !shown.starts_with(&e.file.display().to_string()) {
        return Err(format!(
            "the error does not name {}: {shown}",
            path.display()
        ));
    }
    let lines = std::fs::read(&e.file).map_or(0, |text| text.split(|&b| b == b'\n').count());
    match e.line {
        Some(line) if line == 0 || line > lines => Err(format!(
            "line {line} is not in {} ({lines} lines): {shown}",
            e.file.display()
        )),
        _ => Ok(()),
    }
}

/// Keys an override may set: the schema's, W&B's, and malformed ones.
#[rustfmt::skip]
pub const KEYS: &[&str] = &[
    "name", "description", "command", "shell", "parameters", "parameters.lr", "parameters.lr.low",
    "parameters.lr.high", "parameters.lr.type", "parameters.lr.log", "parameters.x.step",
    "parameters.new", "parameters.new.type", "metric", "metric.name", "metric.goal", "metrics",
    "method", "grid", "grid.points", "grid.values.lr", "tpe", "tpe.gamma", "tpe.startup_trials",
    "seed", "budget", "budget.max_trials", "budget.max_time", "budget.target",
    "budget.max_failures", "resources", "resources.max_concurrent", "resources.trial_timeout",
    "resources.kill_grace", "resources.gpus", "resources.gpus_per_trial", "early_stopping",
    "early_stopping.type", "early_stopping.max_resource", "early_stopping.population_size",
    "early_stopping.brackets", "early_stopping.reduction_factor", "early_stopping.min_resource",
    "early_stopping.n_warmup_steps", "early_stopping.perturbation_factors", "tpe.candidates",
    "tpe.prior_weight", "tpe.magic_exponent", "storage", "report.regex", "report.prefix", "env.X",
    "workdir", "recovery", "recovery.heartbeat", "recovery.grace", "recovery.max_retries",
    "imports", "program", "run_cap", "nope", "budget.nope", "a.b.c.d.e", "name.x", "é", "", ".",
    "a..b", " budget.max_trials ", "budget.max_trials.x", "=",
];

/// Overrides to apply to a valid study file, `seeds::STUDY_FILES[seed]`.
#[derive(Clone, Debug)]
pub struct OverridesInput {
    pub seed: usize,
    pub overrides: Vec<String>,
}

pub fn overrides() -> impl Strategy<Value = OverridesInput> {
    let values: Vec<&'static str> = VALUES.iter().chain(NUMBERS).copied().collect();
    let one = prop_oneof![
        6 => (select(KEYS), select(values)).prop_map(|(k, v)| format!("{k}={v}")),
        2 => (select(KEYS), regex("\\PC{0,20}")).prop_map(|(k, v)| format!("{k}={v}")),
        1 => any::<String>(),
        1 => (select(KEYS), prop::collection::vec(mutation(), 1..3))
            .prop_map(|(k, m)| lossy(&mutated(format!("{k}=1").as_bytes(), &m))),
    ];
    (0..STUDY_FILES.len(), prop::collection::vec(one, 1..4))
        .prop_map(|(seed, overrides)| OverridesInput { seed, overrides })
}

/// Overrides never panic; an error names the file, and an override that cannot be applied is
/// named by its key (or its text, when it has no key).
pub fn check_overrides(scratch: &Scratch, input: &OverridesInput) -> Result<(), String> {
    let seed = STUDY_FILES[input.seed];
    let path = scratch.write(seed.file, seed.text.as_bytes());
    let Err(e) = hyperion_config::load(&path, &input.overrides) else {
        return Ok(());
    };
    let shown = e.to_string();
    if e.file != path || !shown.starts_with(&path.display().to_string()) {
        return Err(format!(
            "the error does not name {}: {shown}",
            path.display()
        ));
    }
    let names_one = input.overrides.iter().any(|o| {
        let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
        shown.contains(key.trim())
    });
    if e.message.ends_with("(command-line override)") && !names_one {
        return Err(format!("the error names no override: {shown}"));
    }
    Ok(())
}

/// How numbers, units and separators combine in a duration, and what breaks them.
#[rustfmt::skip]
const DURATION_NUMBERS: &[&str] = &[
    "1", "1.5", ".", "1.", ".5", "", "0.0001", "1e-10", "١٢", "184467440737095516150",
    "0000000000000000000000001",
];
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "ms", "s", "sec", "m", "min", "h", "d", "", " ", "x", "µs", "H", "ns", "w", "hh", "s ",
];
#[rustfmt::skip]
const DURATIONS: &[&str] = &["90", "90s", "30m", "2h", "1h30m", "500ms", "1.5d", " 2h 5m "];

pub fn duration_text() -> impl Strategy<Value = String> {
    let number = select(
        NUMBERS
            .iter()
            .chain(DURATION_NUMBERS)
            .copied()
            .collect::<Vec<_>>(),
    );
    let piece = (number, select(UNITS)).prop_map(|(n, u)| format!("{n}{u}"));
    prop_oneof![
        4 => prop::collection::vec(piece, 1..4).prop_map(|p| p.concat()),
        2 => regex("[0-9.eE+ -]{0,24}(ms|s|sec|m|min|h|d)?"),
        1 => any::<String>(),
        2 => (select(DURATIONS), prop::collection::vec(mutation(), 1..4))
            .prop_map(|(d, m)| lossy(&mutated(d.as_bytes(), &m))),
    ]
}

/// Parsing a duration never panics; an error quotes the text.
pub fn check_duration(text: &str) -> Result<(), String> {
    match hyperion_config::parse_duration(text) {
        Err(e) if !e.contains(text) => Err(format!("the error does not quote {text:?}: {e}")),
        _ => Ok(()),
    }
}

#[rustfmt::skip]
const SCHEMES: &[&str] = &[
    "sqlite", "SQLite", "postgres", "postgresql", "memory", ":memory", "", "file", "http", "c",
    "sqlite:sqlite", "é",
];
const SEPARATORS: &[&str] = &[":", "://", ":///", ":/", "", "//", "::", ":\\", " :"];
#[rustfmt::skip]
const PATHS: &[&str] = &[
    "", "a.db", "/abs/x.db", "..", ":memory:", "memory", "\0", "é.db", "dir/", " ", "~/x.db",
    "C:\\x.db", "a:b", "//host/db",
];

pub fn storage_url() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (select(SCHEMES), select(SEPARATORS), select(PATHS))
            .prop_map(|(s, sep, p)| format!("{s}{sep}{p}")),
        1 => any::<String>(),
        1 => (select(PATHS), prop::collection::vec(mutation(), 1..3))
            .prop_map(|(p, m)| lossy(&mutated(format!("sqlite:{p}").as_bytes(), &m))),
    ]
}

/// Reading a storage URL never panics; an error names the URL, and a path is never empty.
pub fn check_storage_url(url: &str) -> Result<(), String> {
    match hyperion_store::sqlite_path(url) {
        Err(e) if !e.to_string().contains(url) => {
            Err(format!("the error does not name {url:?}: {e}"))
        }
        Ok(Some(path)) if path.as_os_str().is_empty() => Err(format!("{url:?} gave an empty path")),
        _ => Ok(()),
    }
}

#[rustfmt::skip]
const FIELDS: &[&str] = &[
    "type", "type", "low", "high", "log", "step", "choices", "value", "condition", "name",
];
#[rustfmt::skip]
const JSON_VALUES: &[&str] = &[
    "\"float\"", "\"int\"", "\"categorical\"", "\"constant\"", "\"nope\"", "0", "-1", "1", "3",
    "0.5", "1e308", "-1e308", "1.7976931348623157e308", "5e-324", "9223372036854775807",
    "-9223372036854775808", "18446744073709551615", "18446744073709551616", "1e400", "true",
    "false", "null", "[]", "[1, 1]", "[\"a\", \"b\"]", "[1.5, \"a\", true, null]", "{}",
    "{\"parent\": \"p0\", \"values\": [\"a\"]}", "{\"parent\": \"p1\", \"values\": [1]}",
    "{\"parent\": \"p2\", \"values\": []}", "\"p0\"", "\"\"",
];

/// A JSON search space: mutated seeds, spaces assembled from edge values, arbitrary text.
pub fn space_json() -> impl Strategy<Value = String> {
    let field = (select(FIELDS), select(JSON_VALUES)).prop_map(|(f, v)| format!("\"{f}\": {v}"));
    let param = prop::collection::vec(field, 0..6);
    prop_oneof![
        4 => (select(SPACES), prop::collection::vec(mutation(), 1..6))
            .prop_map(|(s, m)| lossy(&mutated(s.as_bytes(), &m))),
        3 => (prop::collection::vec(param, 0..5), any::<bool>()).prop_map(|(params, list)| {
            let items: Vec<String> = params
                .into_iter()
                .enumerate()
                .map(|(k, fields)| {
                    if list {
                        format!("{{\"name\": \"p{k}\", {}}}", fields.join(", "))
                    } else {
                        format!("\"p{k}\": {{{}}}", fields.join(", "))
                    }
                })
                .collect();
            if list {
                format!("[{}]", items.join(", "))
            } else {
                format!("{{{}}}", items.join(", "))
            }
        }),
        1 => any::<String>(),
    ]
}

/// Reading a search space never panics, and an error says something.
pub fn check_space(json: &str) -> Result<(), String> {
    match hyperion_config::parse_space(json) {
        Err(e) if e.trim().is_empty() => Err("an empty error".into()),
        _ => Ok(()),
    }
}

#[rustfmt::skip]
const METRIC_LINES: &[&str] = &[
    r#"HYPERION_METRIC {"step": 3, "val_loss": 0.21}"#,
    r#"HYPERION_METRIC: {"loss": NaN, "acc": Infinity, "lr": -Infinity}"#,
    r#"{"step": 1, "loss": 0.5, "note": "x", "nested": {"a": [1, 2]}}"#,
    r#"HYPERION_METRIC {"step": -1, "loss": "0.3", "big": 1e308, "huge": 1e400}"#,
    "epoch 3 val_loss=0.25 acc=0.9",
    "epoch 18446744073709551616 val_loss=1e999",
];
#[rustfmt::skip]
const METRIC_REGEXES: &[&str] = &[
    r"epoch (?P<step>\d+) val_loss=(?P<val_loss>[0-9.e+-]+)",
    r"(?P<acc>[0-9.]+)", r"(?P<step>.*)", r"((((((a*)*)*)*)*)*)", r"(?P<x>\pL+)", "",
];

/// A metric line (a metrics-file line, a prefixed stdout line, a line for a user regex) and
/// the regex, from mutated seeds and arbitrary text.
pub fn metric_line() -> impl Strategy<Value = (String, String)> {
    let line = prop_oneof![
        4 => (select(METRIC_LINES), prop::collection::vec(mutation(), 1..5))
            .prop_map(|(l, m)| lossy(&mutated(l.as_bytes(), &m))),
        1 => any::<String>(),
    ];
    let pattern = prop_oneof![
        3 => select(METRIC_REGEXES).prop_map(str::to_owned),
        1 => (select(METRIC_REGEXES), prop::collection::vec(mutation(), 1..3))
            .prop_map(|(r, m)| lossy(&mutated(r.as_bytes(), &m))),
    ];
    (line, pattern)
}

/// Reading metrics from a line never panics, a step read is a whole number, and taking the
/// records in gives finite intermediate values only.
pub fn check_metric_line((line, pattern): &(String, String)) -> Result<(), String> {
    use hyperion_runtime::protocol::{Reported, parse_record, parse_stdout};
    let regex = hyperion_runtime::MetricRegex::new(pattern)
        .ok()
        .map(|r| r.0);
    let mut records: Vec<_> = parse_stdout(
        line,
        hyperion_runtime::DEFAULT_PREFIX,
        regex.as_ref(),
        &["val_loss".into()],
    )
    .into_iter()
    .filter_map(Result::ok)
    .collect();
    records.extend(parse_record(line));
    let spec = hyperion_core::StudySpec::new(
        "s",
        vec![
            hyperion_core::Objective::minimize("val_loss"),
            hyperion_core::Objective::maximize("acc"),
        ],
        hyperion_core::SearchSpace::default(),
    );
    let mut reported = Reported::default();
    for record in records {
        let (_, values) = reported.take(&spec, record);
        if values.iter().any(|v| !v.is_finite()) {
            return Err(format!("a non-finite intermediate value from {line:?}"));
        }
    }
    Ok(())
}

/// Strings matching `pattern`, compiled once (a `&str` strategy compiles it per value).
fn regex(pattern: &str) -> impl Strategy<Value = String> + use<> {
    proptest::string::string_regex(pattern).expect("a valid regex")
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One drawn input with its check, for a driver that runs many (and may watch it from
/// another thread).
pub trait Case: fmt::Debug + Send + Sync {
    fn check(&self, scratch: &Scratch) -> Result<(), String>;
}

struct Drawn<T> {
    input: T,
    check: fn(&Scratch, &T) -> Result<(), String>,
}

impl<T: fmt::Debug> fmt::Debug for Drawn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.input.fmt(f)
    }
}

impl<T: fmt::Debug + Send + Sync> Case for Drawn<T> {
    fn check(&self, scratch: &Scratch) -> Result<(), String> {
        (self.check)(scratch, &self.input)
    }
}

/// A generator and its check, behind one type so a driver can take turns among them.
pub struct Target {
    pub name: &'static str,
    draw: Box<Draw>,
}

/// Draws an input from the runner's random source, with its check.
type Draw = dyn Fn(&mut TestRunner) -> Box<dyn Case>;

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

impl Target {
    fn new<S>(
        name: &'static str,
        strategy: S,
        check: fn(&Scratch, &S::Value) -> Result<(), String>,
    ) -> Self
    where
        S: Strategy + 'static,
        S::Value: Send + Sync + 'static,
    {
        let draw = move |runner: &mut TestRunner| -> Box<dyn Case> {
            let tree = strategy
                .new_tree(runner)
                .expect("these strategies never reject");
            Box::new(Drawn {
                input: tree.current(),
                check,
            })
        };
        Target {
            name,
            draw: Box::new(draw),
        }
    }

    /// Draws the next input from `runner`'s random source.
    pub fn draw(&self, runner: &mut TestRunner) -> Box<dyn Case> {
        (self.draw)(runner)
    }
}

/// Every target, in the order a report lists them.
pub fn targets() -> Vec<Target> {
    vec![
        Target::new("study_file", study_file(), check_load),
        Target::new("overrides", overrides(), check_overrides),
        Target::new("duration", duration_text(), |_, t| check_duration(t)),
        Target::new("storage_url", storage_url(), |_, u| check_storage_url(u)),
        Target::new("space_json", space_json(), |_, j| check_space(j)),
        Target::new("metric_line", metric_line(), |_, l| check_metric_line(l)),
    ]
}
