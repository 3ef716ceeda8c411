use std::ops::Deref;

use hyperion_store::PgStore;
use hyperion_store::pg::testing::TestSchema;

/// A store in a schema of its own on the test server, dropped after the test.
struct Fixture {
    store: PgStore,
    _schema: TestSchema,
}

impl Fixture {
    fn new() -> Option<Self> {
        let schema = TestSchema::new()?;
        let store = PgStore::open(&schema.url).unwrap();
        Some(Fixture {
            store,
            _schema: schema,
        })
    }
}

impl Deref for Fixture {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.store
    }
}

hyperion_store::conformance_tests!(match Fixture::new() {
    Some(fixture) => fixture,
    None => return,
});

/// `url` with its user and password replaced.
fn with_login(url: &str, user: &str, password: &str) -> String {
    let rest = url.split_once('@').expect("the test URL names a user").1;
    format!("postgresql://{user}:{password}@{rest}")
}

fn refusal(url: &str) -> String {
    let e = hyperion_store::open(url).expect_err("refused");
    let shown = e.to_string();
    assert!(!shown.contains("wr0ng"), "the password is hidden: {shown}");
    assert_eq!(shown.lines().count(), 1, "one line: {shown}");
    shown
}

#[test]
fn bad_urls_and_logins_get_one_clear_line_each_and_write_nothing() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let e = refusal(&with_login(&schema.url, "hyperion", "wr0ng"));
    assert!(e.contains("refused the login of user \"hyperion\""), "{e}");
    assert!(e.contains("postgresql://hyperion:***@127.0.0.1"), "{e}");

    let e = refusal("postgresql://hyperion:wr0ng@127.0.0.1:1/hyperion?connect_timeout=5");
    assert!(e.contains("cannot reach the server at 127.0.0.1:1"), "{e}");

    // infra/postgres-up.sh makes this user, who may log in but not create schemas.
    let e = refusal(&with_login(&schema.url, "hyperion_limited", "hyperion"));
    assert!(e.contains("may not create the schema"), "{e}");
    assert!(e.contains("?schema=NAME"), "{e}");

    let e = refusal("postgresq://hyperion:wr0ng@127.0.0.1/hyperion");
    assert!(e.contains("unknown storage scheme \"postgresq\""), "{e}");
    assert!(
        e.contains("postgresql:"),
        "the known schemes are listed: {e}"
    );

    // None of these created the schema.
    let exists: bool = schema
        .client()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema.url.rsplit_once("schema=").unwrap().1],
        )
        .unwrap()
        .get(0);
    assert!(!exists);
}

/// The authority that signed the test server's certificate (`infra/postgres-up.sh`).
fn test_authority() -> String {
    let ca = std::env::var("HYPERION_TEST_POSTGRES_CA")
        .unwrap_or_else(|_| "/etc/postgresql/15/main/hyperion-tls/ca.crt".into());
    assert!(
        std::path::Path::new(&ca).exists(),
        "the test server's certificate authority {ca} is missing: run infra/postgres-up.sh \
         (or set HYPERION_TEST_POSTGRES_CA)"
    );
    ca
}

#[test]
fn sslmode_is_honoured_and_a_server_that_cannot_prove_who_it_is_is_refused() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let ca = test_authority();
    let mut client = schema.client();
    let mut encrypted = |query: &str| -> bool {
        let name = format!("tls_test_{}", std::process::id());
        let store = PgStore::open(&format!("{}&application_name={name}&{query}", schema.url))
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let ssl: Vec<bool> = client
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = $1",
                &[&name],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(store);
        assert_eq!(ssl.len(), 1, "{query}: one connection of the store");
        ssl[0]
    };
    assert!(!encrypted("sslmode=disable"));
    assert!(encrypted("sslmode=prefer"));
    assert!(encrypted("sslmode=require"));
    assert!(encrypted(&format!("sslmode=verify-ca&sslrootcert={ca}")));
    assert!(encrypted(&format!("sslmode=verify-full&sslrootcert={ca}")));

    // The machine's authorities never signed the test server's certificate.
    let e = refusal(&format!(
        "{}&sslmode=verify-full&sslrootcert=system",
        schema.url
    ));
    assert!(
        e.contains("no TLS connection to the server at 127.0.0.1"),
        "{e}"
    );
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = refusal(&format!("{}&sslmode=verify-ful", schema.url));
    assert!(e.contains("sslmode \"verify-ful\" is not one of"), "{e}");
    let e = refusal(&format!(
        "{}&sslmode=verify-full&sslrootcert=/nonexistent.crt",
        schema.url
    ));
    assert!(e.contains("/nonexistent.crt"), "{e}");
    if hyperion_store::pg::tls::default_root().is_none() {
        let e = refusal(&format!("{}&sslmode=verify-full", schema.url));
        assert!(e.contains("needs a root certificate"), "{e}");
    }
}

#[test]
fn a_schema_of_another_program_or_a_newer_hyperion_is_refused_and_left_untouched() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let name = schema.url.rsplit_once("schema=").unwrap().1.to_owned();
    let mut client = schema.client();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {name}; CREATE TABLE {name}.orders (id int)"
        ))
        .unwrap();
    let e = refusal(&schema.url);
    assert!(e.contains("holds tables of another program"), "{e}");
    client
        .batch_execute(&format!("DROP TABLE {name}.orders"))
        .unwrap();

    let store = PgStore::open(&schema.url).unwrap();
    drop(store);
    client
        .batch_execute(&format!(
            "UPDATE {name}.meta SET value = '99' WHERE key = 'version'"
        ))
        .unwrap();
    let e = refusal(&schema.url);
    assert!(e.contains("newer Hyperion (version 99"), "{e}");
    let version: String = client
        .query_one(
            &format!("SELECT value FROM {name}.meta WHERE key = 'version'"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, "99", "left untouched");
}

#[test]
fn workers_starting_at_once_migrate_once() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let stores: Vec<PgStore> = std::thread::scope(|s| {
        let opening: Vec<_> = (0..8)
            .map(|_| s.spawn(|| PgStore::open(&schema.url).unwrap()))
            .collect();
        opening.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(stores.len(), 8);
}

#[test]
fn a_write_by_another_process_wakes_a_watcher_of_its_study_only() {
    use hyperion_core::{Objective, Params, SearchSpace, StudySpec};
    use hyperion_store::{NewTrial, Store};
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let (watched, writer) = (
        PgStore::open(&schema.url).unwrap(),
        PgStore::open(&schema.url).unwrap(),
    );
    let spec = |name: &str| {
        StudySpec::new(
            name,
            vec![Objective::minimize("loss")],
            SearchSpace::default(),
        )
    };
    let (a, b) = (
        writer.create_study(&spec("a")).unwrap(),
        writer.create_study(&spec("b")).unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let guard = watched
        .watch(
            a.id,
            Box::new(move || {
                let _ = tx.lock().unwrap().send(());
            }),
        )
        .unwrap()
        .expect("PostgreSQL can watch");
    let create = |study| {
        writer
            .create_trial(study, &NewTrial::running(), None, &mut |_| {
                Some(Params::new().into())
            })
            .unwrap()
    };
    // Another study's write wakes nobody; this study's does.
    create(b.id);
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(500))
            .is_err()
    );
    create(a.id);
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("woken by the write");
    drop(guard);
}

#[test]
fn a_study_copied_to_postgresql_and_back_keeps_its_trials_and_log() {
    use hyperion_core::{
        Change, Decision, DecisionAction, FloatDistribution, Objective, SearchSpace, StudySpec,
        TrialState,
    };
    use hyperion_store::{Created, NewTrial, SqliteStore, Store, copy_study};
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("a.db")).unwrap();
    let space = SearchSpace::builder()
        .param("x", FloatDistribution::new(0.0, 1.0))
        .build()
        .unwrap();
    let spec = StudySpec::new("s", vec![Objective::minimize("loss")], space);
    let study = sqlite.create_study(&spec).unwrap().id;
    let mut numbers = Vec::new();
    for i in 0..4 {
        let point = |_| {
            let mut params = hyperion_core::Params::new();
            params.insert("x".into(), (i as f64 / 4.0).into());
            Some(params.into())
        };
        let Created::Trial(t) = sqlite
            .create_trial(study, &NewTrial::running(), None, &mut { point })
            .unwrap()
        else {
            panic!("created")
        };
        numbers.push(t.number);
    }
    sqlite.report(study, numbers[0], 1, &[0.5]).unwrap();
    sqlite
        .set_user_attr(study, numbers[1], "note", &serde_json::json!("hi"))
        .unwrap();
    sqlite
        .finish_trial(study, numbers[0], TrialState::Completed, Some(vec![0.25]))
        .unwrap();
    sqlite
        .finish_trial(
            study,
            numbers[1],
            TrialState::Failed {
                error: "boom".into(),
            },
            None,
        )
        .unwrap();
    let decision = Decision {
        trial: Some(numbers[2]),
        policy: "median".into(),
        action: DecisionAction::Continue,
        rationale: "why".into(),
    };
    sqlite
        .log(study, &Change::DecisionRecorded(decision))
        .unwrap();

    let pg = PgStore::open(&schema.url).unwrap();
    let there = copy_study(&sqlite, &pg, "s", "t").unwrap();
    assert_eq!(there.trials, 4);
    let back_dir = tempfile::tempdir().unwrap();
    let back = SqliteStore::open(back_dir.path().join("b.db")).unwrap();
    copy_study(&pg, &back, "t", "s").unwrap();

    let strip = |store: &dyn Store, name: &str| {
        let id = store.study(name).unwrap().id;
        let trials: Vec<_> = store
            .trials(id)
            .unwrap()
            .into_iter()
            .map(|t| {
                (
                    t.number,
                    t.state,
                    t.params,
                    t.values,
                    t.intermediate,
                    t.user_attrs,
                )
            })
            .collect();
        let kinds: Vec<&str> = store
            .changes_since(id, 0)
            .unwrap()
            .iter()
            .map(|c| c.change.kind())
            .collect();
        (trials, kinds, store.decisions(id).unwrap())
    };
    assert_eq!(strip(&sqlite, "s"), strip(&pg, "t"));
    assert_eq!(strip(&sqlite, "s"), strip(&back, "s"));
    // Into a store that has the name already: refused, and nothing changed there.
    let e = copy_study(&sqlite, &pg, "s", "t").unwrap_err();
    assert!(e.to_string().contains("already exists there"), "{e}");
    assert_eq!(strip(&sqlite, "s"), strip(&pg, "t"));
}

#[test]
fn writers_in_many_processes_each_get_the_proposal_made_for_their_number() {
    use hyperion_core::{Change, Objective, ParamValue, Params, SearchSpace, StudySpec};
    use hyperion_store::{Created, NewTrial, Store};
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let spec = StudySpec::new(
        "s",
        vec![Objective::minimize("loss")],
        SearchSpace::default(),
    );
    // Four stores, as four processes would have, four threads each: the stores propose ahead
    // for the numbers they expect, and others take some of those numbers first.
    let stores: Vec<PgStore> = (0..4)
        .map(|_| PgStore::open(&schema.url).unwrap())
        .collect();
    let study = stores[0].create_study(&spec).unwrap().id;
    let max = 240;
    std::thread::scope(|scope| {
        for store in &stores {
            for _ in 0..4 {
                scope.spawn(move || {
                    loop {
                        let made = store
                            .create_trial(study, &NewTrial::running(), Some(max), &mut |n| {
                                let x = ParamValue::Int(n.0 as i64);
                                Some(Params::from([("x".to_owned(), x)]).into())
                            })
                            .unwrap();
                        match made {
                            Created::Trial(trial) => {
                                assert_eq!(
                                    trial.params["x"],
                                    ParamValue::Int(trial.number.0 as i64)
                                );
                                store.changes_since(study, 0).unwrap();
                            }
                            Created::LimitReached => break,
                            Created::Declined => panic!("nothing declines"),
                        }
                    }
                });
            }
        }
    });
    let trials = stores[1].trials(study).unwrap();
    assert_eq!(trials.len(), max as usize, "max_trials stays exact");
    for (i, trial) in trials.iter().enumerate() {
        assert_eq!(trial.number.0, i as u64, "numbers are dense");
        assert_eq!(trial.params["x"], ParamValue::Int(i as i64));
    }
    // The log says what the table says, ids included, in order.
    let log = stores[2].changes_since(study, 0).unwrap();
    let created: Vec<_> = log
        .iter()
        .filter_map(|c| match &c.change {
            Change::TrialCreated {
                id, number, params, ..
            } => Some((*id, *number, params.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = trials
        .iter()
        .map(|t| (t.id, t.number, t.params.clone()))
        .collect();
    assert_eq!(created, expected);
    assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}
