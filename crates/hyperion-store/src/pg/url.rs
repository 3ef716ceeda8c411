//! Storage URLs for PostgreSQL as libpq users write them: `postgresql://user:password@host:port/db`
//! (or `postgres://`), with the blanks filled from `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD` and `~/.pgpass` (or `PGPASSFILE`). `sslmode` (or `PGSSLMODE`) and
//! `sslrootcert` are libpq's (see [`super::tls`]).
//! Hyperion's own `?schema=NAME` picks the schema its tables live in (`hyperion` by default).
//! A password is never shown: [`redact`] is what errors and logs print.

use std::path::PathBuf;

/// The schema Hyperion's tables live in unless the URL names another.
pub const DEFAULT_SCHEMA: &str = "hyperion";

/// A parsed PostgreSQL storage URL.
#[derive(Clone)]
pub struct PgUrl {
    pub config: postgres::Config,
    /// TLS as `sslmode` asks.
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub schema: String,
    /// The URL as given, with its password hidden.
    pub shown: String,
}

/// Shows the URL as errors do, its password hidden.
impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `url` with the password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    // A password may also come as a query parameter.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Parses `url`, filling what it leaves out from the environment as libpq does.
pub fn parse(url: &str) -> Result<PgUrl, String> {
    let shown = redact(url);
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut schema = DEFAULT_SCHEMA.to_owned();
    let mut passed = Vec::new();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut sslmode = env("PGSSLMODE").unwrap_or_else(|| "prefer".into());
    let mut root = None;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("schema", name)) => schema = name.to_owned(),
            Some(("sslmode", mode)) => sslmode = mode.to_owned(),
            Some(("sslrootcert", path)) => root = Some(PathBuf::from(path)),
            Some((key @ ("sslcert" | "sslkey" | "sslpassword" | "sslcrl"), _)) => {
                return Err(format!("{key}: client certificates are not supported yet"));
            }
            _ => passed.push(kv),
        }
    }
    let sslmode = super::tls::SslMode::parse(&sslmode)?;
    let tls = super::tls::connector(sslmode, root.or_else(super::tls::default_root).as_deref())?;
    if schema.is_empty()
        || schema.len() > 63
        || !schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || schema.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!(
            "schema \"{schema}\" is not a plain name (lowercase letters, digits and _, at most \
             63, not starting with a digit)"
        ));
    }
    // libpq accepts `postgresql://` with nothing after it; so does the parser, given a host.
    let mut text = base.to_owned();
    if !passed.is_empty() {
        text = format!("{text}?{}", passed.join("&"));
    }
    let mut config = text.parse::<postgres::Config>().map_err(|e| {
        let e = e.to_string();
        // The parser's message may quote the URL: never with its password.
        format!("not a valid PostgreSQL URL ({})", e.replace(url, &shown))
    })?;
    fill_from_environment(&mut config);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("hyperion");
    }
    config.ssl_mode(sslmode.driver());
    Ok(PgUrl {
        config,
        tls,
        schema,
        shown,
    })
}

fn fill_from_environment(config: &mut postgres::Config) {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(hosts) => hosts.split(',').for_each(|h| {
                config.host(h);
            }),
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = env("PGPORT").and_then(|p| p.parse().ok())
    {
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").to_owned());
        config.dbname(&db);
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(&password);
        } else if let Some(password) = pgpass(config) {
            config.password(&password);
        }
    }
}

/// The password `~/.pgpass` (or `PGPASSFILE`) has for this host, port, database and user:
/// the first matching line of `host:port:database:user:password`, `*` matching anything.
fn pgpass(config: &postgres::Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first()? {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(_) => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let wanted = [
        host.as_str(),
        port.as_str(),
        config.get_dbname()?,
        config.get_user()?,
    ];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = [h, p, d, u]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
            matches.then(|| password.clone())
        })
}

/// The fields of a `.pgpass` line: `:` separates them, `\:` and `\\` escape.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgresql://u:s3cret@db:5432/x?sslmode=require"),
            "postgresql://u:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(
            redact("postgresql://db/x?password=s3cret&schema=a"),
            "postgresql://db/x?password=***&schema=a"
        );
        // A password holding an @ is hidden whole.
        assert_eq!(
            redact("postgresql://u:p@ss@db/x"),
            "postgresql://u:***@db/x"
        );
    }

    #[test]
    fn the_schema_is_hyperions_own_parameter() {
        let url = parse("postgresql://u:p@127.0.0.1:5433/x?schema=team_a&sslmode=disable").unwrap();
        assert_eq!(url.schema, "team_a");
        assert_eq!(url.config.get_dbname(), Some("x"));
        assert_eq!(url.config.get_ports(), &[5433]);
        assert_eq!(
            url.shown,
            "postgresql://u:***@127.0.0.1:5433/x?schema=team_a&sslmode=disable"
        );
        let e = parse("postgresql://u@h/x?schema=Robert';DROP").unwrap_err();
        assert!(e.contains("not a plain name"), "{e}");
        let e = parse("postgresql://u:p@h/x?colour=blue").unwrap_err();
        assert!(!e.contains(":p@"), "{e}");
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        assert_eq!(
            split_pgpass(r"h:5432:*:u:pa\:ss"),
            ["h", "5432", "*", "u", "pa:ss"]
        );
        assert_eq!(split_pgpass("h:1:d:u:a:b"), ["h", "1", "d", "u", "a:b"]);
    }
}
