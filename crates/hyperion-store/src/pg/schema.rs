//! A PostgreSQL store's tables: created or migrated forward when a process connects, in the
//! store's own schema and under an advisory lock (two workers starting at once never both
//! migrate); and server errors explained in words a user can act on.

use postgres::Client;
use postgres::error::SqlState;

use super::{Fail, PgUrl};
use crate::StoreError;

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit a released one.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("v2.sql"),
    include_str!("v3.sql"),
    include_str!("v4.sql"),
];

/// Sets the connection's search path to the store's schema and brings the schema to this
/// release's version, refusing one that is not a Hyperion store's or is newer.
pub(super) fn prepare(client: &mut Client, url: &PgUrl) -> Result<(), Fail> {
    let schema = url.schema.as_str();
    // A plain name (checked when the URL was parsed): safe to quote into SQL. The store's
    // literals (`super::literal`) need standard strings, whatever the server's default.
    client.batch_execute(&format!(
        "SET search_path TO \"{schema}\"; SET standard_conforming_strings = on"
    ))?;
    let current = MIGRATIONS.len() as i64;
    if version(client, schema)? == Some(current) {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("hyperion schema {schema}")],
    )?;
    // Created only when missing: a schema an administrator made needs no CREATE right.
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )?
        .get(0);
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))?;
    }
    // Read again under the lock: another process may have migrated meanwhile.
    let found = version(&mut tx, schema)?;
    let refuse = |reason: String| {
        Fail::Store(StoreError::Server {
            url: url.shown.clone(),
            reason,
        })
    };
    let from = match found {
        Some(v) if v > current => {
            return Err(refuse(format!(
                "its schema \"{schema}\" was written by a newer Hyperion (version {v}; this one \
                 reads up to {current}); upgrade Hyperion to use it. It was left untouched"
            )));
        }
        Some(v) => v,
        None => {
            let tables: i64 = tx
                .query_one(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
                    &[&schema],
                )?
                .get(0);
            if tables > 0 {
                return Err(refuse(format!(
                    "its schema \"{schema}\" holds tables of another program; it was left \
                     untouched (name another schema with ?schema=NAME)"
                )));
            }
            0
        }
    };
    for sql in &MIGRATIONS[from as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('application', 'hyperion'), ('version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&current.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

/// The version of the store in `schema`, if it has one.
fn version(client: &mut impl postgres::GenericClient, schema: &str) -> Result<Option<i64>, Fail> {
    let has_meta: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.meta', $1::text)) IS NOT NULL",
            &[&schema],
        )?
        .get(0);
    if !has_meta {
        return Ok(None);
    }
    let row = client.query_opt("SELECT value FROM meta WHERE key = 'version'", &[])?;
    Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()))
}

/// What went wrong, for a user: the server's words with what to do, or why it was not reached.
pub(super) fn explain(e: &postgres::Error, url: &PgUrl) -> String {
    let user = url.config.get_user().unwrap_or("?");
    let db = url.config.get_dbname().unwrap_or("?");
    let Some(db_error) = e.as_db_error() else {
        let host = match url.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = url.config.get_ports().first().copied().unwrap_or(5432);
        let why = match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        if why.contains("TLS") {
            return format!("no TLS connection to the server at {host}:{port} ({why})");
        }
        return format!("cannot reach the server at {host}:{port} ({why})");
    };
    let code = db_error.code();
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        format!(
            "the server refused the login of user \"{user}\": {} (the password comes from the \
             URL, PGPASSWORD or ~/.pgpass)",
            db_error.message()
        )
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        format!(
            "user \"{user}\" may not create the schema \"{}\" in database \"{db}\" ({}): grant \
             it CREATE on the database, or name a schema it owns with ?schema=NAME",
            url.schema,
            db_error.message()
        )
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        format!("database \"{db}\" does not exist on the server")
    } else {
        db_error.message().to_owned()
    }
}
