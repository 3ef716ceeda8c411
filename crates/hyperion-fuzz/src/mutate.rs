//! Byte and line mutations of a valid text, each one a value proptest can shrink.

use proptest::prelude::*;
use proptest::sample::Index;

/// YAML and TOML syntax, keys of the schema and of W&B, and values that are hard to read.
#[rustfmt::skip]
pub const TOKENS: &[&str] = &[
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "\n", "\r\n", "  ", "\t", "#", "'", "\"", "\\",
    "=", " = ", "[[", "]]", "[a]\n", "|\n", ">\n", "? ", "---\n", "...\n", "%YAML 1.2\n", "&a ",
    "*a", "<<: *a\n", "!!str ", "!!int ", "!!float ", "!!binary ", "!tag ", "~", "null", "true",
    "yes", "no", ".inf", "-.inf", ".nan", "nan", "inf", "1e400", "-1", "0", "1_000", "0x1f", "0o7",
    "+1", "1.", ".5", "é", "€", "𝕏", "日本", "\u{202e}", "\u{feff}", "\u{0}", "\u{7f}", "\u{2028}",
    "{args}", "{args_no_hyphens}", "{trial_dir}", "{lr}", "{nope}", "{", "{{", "}}", "${program}",
    "${env}", "${interpreter}", "${args}", "${nope}", "imports: study.yaml\n",
    "imports: [base.yaml]\n", "imports: 3\n", "name", "command", "shell", "parameters", "type",
    "float", "int", "categorical", "constant", "low", "high", "log", "step", "choices", "value",
    "condition", "parent", "values", "metric", "metrics", "goal", "minimize", "maximize", "method",
    "grid", "points", "random", "sobol", "tpe", "bayes", "budget", "max_trials", "max_time",
    "target", "max_failures", "resources", "max_concurrent", "trial_timeout", "kill_grace", "gpus",
    "gpus_per_trial", "early_stopping", "asha", "hyperband", "pbt", "median", "percentile",
    "population_size", "min_resource", "max_resource", "reduction_factor", "brackets",
    "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials", "perturbation_interval",
    "quantile_fraction", "resample_probability", "perturbation_factors", "startup_trials",
    "candidates", "prior_weight", "multivariate", "constant_liar", "magic_clip",
    "consider_endpoints", "gamma", "min_bandwidth_factor", "magic_exponent", "early_terminate",
    "min_iter", "max_iter", "eta", "s", "program", "distribution", "log_uniform",
    "log_uniform_values", "q_uniform", "int_uniform", "probabilities", "min", "max", "q", "run_cap",
    "recovery", "heartbeat", "grace", "max_retries", "report", "regex", "prefix", "env", "workdir",
    "seed", "storage", "sqlite:", "90s", "1h30m", "500ms", "2d", "-1h", "1e400s",
    "99999999999999999999d",
];

/// Numbers that are extreme, malformed or not numbers at all.
#[rustfmt::skip]
pub const NUMBERS: &[&str] = &[
    "0", "-0", "-1", "1", "2", "0.0", "-0.0", "1e400", "-1e400", "1e308", "-1e308",
    "1.7976931348623157e308", "5e-324", "1e-320", "NaN", "nan", ".nan", ".inf", "-.inf", "inf",
    "-inf", "+inf", "18446744073709551615", "18446744073709551616", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "4294967296",
    "99999999999999999999", "1e19", "1e20", "0x7fffffffffffffff", "0o777", "0b101", "+5", "1_0",
    "1.5e", "1e", "--1", "1..2", "\"7\"", "'8'", "seven", "~", "[]", "{}", "true",
];

/// Values for a key, besides the [`NUMBERS`]: strings, collections and parameter specs near the
/// edges of what the schema accepts.
#[rustfmt::skip]
pub const VALUES: &[&str] = &[
    "''", "\"\"", "' '", "x", "\"{args}\"", "[]", "{}", "[[]]", "[{}]", "~", "null", "[1, 2]",
    "[a, a]", "{a: 1}", "&a [1, *a]", "*a", "!!binary aGk=", "!!str 5", "'", "\"", "[", "{", "90s",
    "1h30m", "-5s", "1e400s", "99999999999999999999d", "1e19s1e19s", "inf",
    "{type: float, low: 1, high: 0}", "{type: float, low: 0, high: 1, log: true}",
    "{type: float, low: 0.0, high: 1.0, step: 0}",
    "{type: float, low: 0.0, high: 1.0, step: 1e-300}",
    "{type: float, low: -1.7976931348623157e308, high: 1.7976931348623157e308}",
    "{type: float, low: -1.7976931348623157e308, high: 1.7976931348623157e308, step: 1}",
    "{type: float, low: 5e-324, high: 1e308, log: true}",
    "{type: int, low: -9223372036854775808, high: 9223372036854775807}",
    "{type: int, low: -9223372036854775808, high: 9223372036854775807, step: 3}",
    "{type: int, low: 1, high: 9223372036854775807, log: true}",
    "{type: int, low: 0, high: 10, step: -1}", "{type: int, low: 1, high: 1e30}",
    "{type: categorical, choices: []}", "{type: categorical, choices: [a, a]}",
    "{type: categorical, choices: [.nan]}", "{type: constant}", "{type: nope}", "{min: 1, max: 0}",
    "{distribution: log_uniform, min: 1000, max: 2000}",
    "{distribution: log_uniform_values, min: -1, max: 1}",
    "{distribution: q_uniform, min: 0, max: 1, q: 0}", "{values: []}", "{parameters: {a: 1}}",
    "{type: hyperband, min_iter: 18446744073709551615, eta: 18446744073709551615}",
    "{type: hyperband, max_iter: 1, s: 4294967296}",
    "{type: asha, max_resource: 18446744073709551615, reduction_factor: 18446744073709551615}",
    "{type: asha, brackets: 18446744073709551615}",
    "{type: hyperband, max_resource: 18446744073709551615, reduction_factor: 2}",
    "{type: pbt, population_size: 18446744073709551615}",
    "{type: median, n_warmup_steps: 18446744073709551615}", "{points: 18446744073709551615}",
];

/// One change to a text. Positions are [`Index`]es into whatever the text is when the change
/// applies, so every mutation applies to every text, and shrinking keeps them meaningful.
#[derive(Clone, Debug)]
pub enum Mutation {
    Delete(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Flip(Index, u8),
    Duplicate(Index, Index, u8),
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Replaces a number in the text with one of [`NUMBERS`].
    Number(Index, Index),
    /// Replaces the value after a `: ` or `= ` with one of [`VALUES`].
    Value(Index, Index),
    /// Opens `depth` nested collections, in one of several styles, closed or not.
    Nest(Index, u16, Index, bool),
    /// A chain of anchors, each aliasing the one before ten times ("billion laughs").
    Aliases(Index, u8),
    /// A key, value or comment of `len` bytes.
    Long(Index, u32, Index),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<Index>;
    prop_oneof![
        3 => (i(), 1u8..32).prop_map(|(at, n)| Mutation::Delete(at, n)),
        2 => (i(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        4 => (i(), i()).prop_map(|(at, t)| Mutation::Token(at, t)),
        1 => (i(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        1 => (i(), i(), 1u8..64).prop_map(|(from, to, n)| Mutation::Duplicate(from, to, n)),
        2 => i().prop_map(Mutation::DeleteLine),
        2 => i().prop_map(Mutation::DuplicateLine),
        2 => (i(), i()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        4 => (i(), i()).prop_map(|(at, n)| Mutation::Number(at, n)),
        4 => (i(), i()).prop_map(|(at, v)| Mutation::Value(at, v)),
        1 => (i(), 1u16..20_000, i(), any::<bool>()).prop_map(|(at, d, s, c)| Mutation::Nest(at, d, s, c)),
        1 => (i(), 1u8..12).prop_map(|(at, levels)| Mutation::Aliases(at, levels)),
        1 => (i(), 1u32..100_000, i()).prop_map(|(at, n, s)| Mutation::Long(at, n, s)),
    ]
}

/// `text` after `mutations`, in order.
pub fn mutated(text: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.to_vec();
    for m in mutations {
        apply(&mut bytes, m);
    }
    bytes
}

/// A position in `0..=len`: between two bytes, or at either end.
fn at(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

pub fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    let insert = |bytes: &mut Vec<u8>, i: &Index, new: &[u8]| {
        let p = at(i, bytes.len());
        bytes.splice(p..p, new.iter().copied());
    };
    match m {
        Mutation::Delete(i, n) => {
            let start = at(i, len);
            bytes.drain(start..(start + *n as usize).min(len));
        }
        Mutation::Insert(i, new) => insert(bytes, i, new),
        Mutation::Token(i, t) => insert(bytes, i, t.get(TOKENS).as_bytes()),
        Mutation::Flip(i, mask) if len > 0 => bytes[i.index(len)] ^= mask,
        Mutation::Duplicate(from, to, n) if len > 0 => {
            let start = from.index(len);
            let copy = bytes[start..(start + *n as usize).min(len)].to_vec();
            insert(bytes, to, &copy);
        }
        Mutation::DeleteLine(i) => edit_lines(bytes, |lines| {
            let k = i.index(lines.len());
            lines.remove(k);
        }),
        Mutation::DuplicateLine(i) => edit_lines(bytes, |lines| {
            let k = i.index(lines.len());
            lines.insert(k, lines[k].clone());
        }),
        Mutation::SwapLines(a, b) => edit_lines(bytes, |lines| {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
        }),
        Mutation::Number(i, n) => {
            let spans = number_spans(bytes);
            replace_span(bytes, &spans, i, n.get::<&str>(NUMBERS));
        }
        Mutation::Value(i, v) => {
            let spans = value_spans(bytes);
            replace_span(bytes, &spans, i, v.get::<&str>(VALUES));
        }
        Mutation::Nest(i, depth, style, closed) => {
            insert(bytes, i, &nested(*depth as usize, style, *closed));
        }
        Mutation::Aliases(i, levels) => {
            let mut text = String::from("\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
            for k in 1..*levels as usize {
                let aliases = vec![format!("*l{}", k - 1); 10].join(", ");
                text += &format!("l{k}: &l{k} [{aliases}]\n");
            }
            insert(bytes, i, text.as_bytes());
        }
        Mutation::Long(i, n, style) => {
            let n = *n as usize;
            let text = match style.index(5) {
                0 => "x".repeat(n),
                1 => "9".repeat(n),
                2 => format!("\n{}: 1\n", "k".repeat(n)),
                3 => format!("\"{}\"", "é".repeat(n / 2)),
                _ => format!("# {}\n", "#".repeat(n)),
            };
            insert(bytes, i, text.as_bytes());
        }
        Mutation::Flip(..) | Mutation::Duplicate(..) => {}
    }
}

/// Edits the lines of `bytes` (each with its line break) when there is at least one.
fn edit_lines(bytes: &mut Vec<u8>, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let mut lines: Vec<Vec<u8>> = bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    if !lines.is_empty() {
        edit(&mut lines);
        *bytes = lines.concat();
    }
}

fn replace_span(bytes: &mut Vec<u8>, spans: &[(usize, usize)], i: &Index, new: &str) {
    if !spans.is_empty() {
        let (start, end) = *i.get(spans);
        bytes.splice(start..end, new.bytes());
    }
}

/// Where numbers are: a digit not inside a word, with its sign, point, exponent, underscores.
fn number_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let is_part = |b: u8| b.is_ascii_digit() || b"._eE+-".contains(&b);
    let mut spans = Vec::new();
    let mut k = 0;
    while k < bytes.len() {
        let starts = bytes[k].is_ascii_digit()
            && (k == 0 || !(bytes[k - 1].is_ascii_alphanumeric() || bytes[k - 1] == b'_'));
        if starts {
            let mut start = k;
            while start > 0 && b"-+.".contains(&bytes[start - 1]) {
                start -= 1;
            }
            let mut end = k;
            while end < bytes.len() && is_part(bytes[end]) {
                end += 1;
            }
            spans.push((start, end));
            k = end;
        } else {
            k += 1;
        }
    }
    spans
}

/// Where values are: after `: ` or `= `, up to the end of the line or of the flow item. One
/// pass: a nest of thousands of `{a: ` would make a search per value quadratic.
fn value_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut open = Vec::new();
    for (k, &b) in bytes.iter().enumerate() {
        if b",}]\n".contains(&b) {
            spans.extend(open.drain(..).map(|start| (start, k)));
        } else if matches!(b, b':' | b'=') && bytes.get(k + 1) == Some(&b' ') {
            open.push(k + 2);
        }
    }
    spans.extend(open.into_iter().map(|start| (start, bytes.len())));
    spans.sort_unstable();
    spans
}

/// `depth` nested collections in one of several YAML and TOML styles.
fn nested(depth: usize, style: &Index, closed: bool) -> Vec<u8> {
    let (open, close): (String, String) = match style.index(6) {
        0 => ("[".repeat(depth), "]".repeat(depth)),
        1 => ("{a: ".repeat(depth), "}".repeat(depth)),
        2 => ("- ".repeat(depth) + "x", String::new()),
        3 => (
            "a = {b = ".repeat(depth.min(2_000)),
            "}".repeat(depth.min(2_000)),
        ),
        4 => (format!("\n[{}a]\n", "a.".repeat(depth)), String::new()),
        _ => {
            // Block mappings, one more indentation per level: quadratic, so fewer levels.
            let depth = depth.min(300);
            let lines: String = (0..depth)
                .map(|k| format!("{}a:\n", " ".repeat(k)))
                .collect();
            (format!("\n{lines}{}x\n", " ".repeat(depth)), String::new())
        }
    };
    let mut text = open;
    if closed {
        text += &close;
    }
    text.into_bytes()
}
