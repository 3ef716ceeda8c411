use std::ops::Deref;
use std::path::Path;

use hyperion_core::{Objective, SearchSpace, StudySpec, TrialState};
use hyperion_store::{Created, NewTrial, SqliteStore, Store, StoreError};

/// A store in a fresh temporary directory, removed on drop.
struct Fixture {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("studies.db")).unwrap();
        Fixture { store, _dir: dir }
    }
}

impl Deref for Fixture {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

hyperion_store::conformance_tests!(Fixture::new());

fn spec() -> StudySpec {
    StudySpec::new(
        "s",
        vec![Objective::minimize("loss")],
        SearchSpace::default(),
    )
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn trials_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/studies.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let study = store.create_study(&spec()).unwrap();
        let Created::Trial(t) = store
            .create_trial(study.id, &NewTrial::running(), None, &mut |_| {
                Some(hyperion_core::Params::new().into())
            })
            .unwrap()
        else {
            panic!()
        };
        store.report(study.id, t.number, 1, &[0.5]).unwrap();
        store
            .finish_trial(study.id, t.number, TrialState::Completed, Some(vec![0.25]))
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let study = store.study("s").unwrap();
    let trials = store.trials(study.id).unwrap();
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].values, Some(vec![0.25]));
    assert_eq!(trials[0].intermediate.get(&1), Some(&0.5));
    assert_eq!(store.changes_since(study.id, 0).unwrap().len(), 3);
}

#[test]
fn a_corrupted_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    std::fs::write(
        &path,
        b"this is not a database at all, just text that is long enough.....".repeat(100),
    )
    .unwrap();
    let before = bytes(&path);
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(
        e.to_string().contains("is not a readable SQLite database"),
        "{e}"
    );
    assert_eq!(bytes(&path), before);
}

#[test]
fn another_programs_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ada');")
            .unwrap();
    }
    let before = bytes(&path);
    let e = SqliteStore::open(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{} is an SQLite database of another program, not a Hyperion store; it was left untouched",
            path.display()
        )
    );
    assert_eq!(bytes(&path), before);
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = bytes(&path);
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(e, StoreError::NewerSchema { found: 99, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("written by a newer Hyperion (schema version 99"),
        "{e}"
    );
    assert_eq!(bytes(&path), before);
}

#[test]
fn a_read_only_directory_is_a_clear_error() {
    if running_as_root() {
        // Root ignores directory permissions; simulate with a path under a regular file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = SqliteStore::open(file.join("studies.db")).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot open the store {}",
                file.join("studies.db").display()
            )),
            "{e}"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let path = dir.path().join("studies.db");
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(e.to_string().contains("is its directory writable?"), "{e}");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn storage_urls_name_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = hyperion_store::open(&format!("sqlite:///{}", path.display())).unwrap();
    store.create_study(&spec()).unwrap();
    assert!(path.exists(), "sqlite:////abs/path opens that file");
    assert_eq!(
        hyperion_store::sqlite_path("sqlite:///runs/x.db").unwrap(),
        Some(std::path::PathBuf::from("runs/x.db")),
        "three slashes and a relative path, as Optuna's URLs have it"
    );
    let again = hyperion_store::open(path.to_str().unwrap()).unwrap();
    assert_eq!(
        again.studies().unwrap().len(),
        1,
        "a bare path is an SQLite file"
    );
    let memory = hyperion_store::open("memory").unwrap();
    assert!(memory.studies().unwrap().is_empty());
    let e = hyperion_store::open("mysql://localhost/db").unwrap_err();
    assert!(
        e.to_string().contains("unknown storage scheme \"mysql\""),
        "{e}"
    );
}

#[test]
fn an_older_schema_is_migrated_forward_on_open() {
    // A Hyperion file from before the first migration: marked as ours, schema version 0.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", 0x4879_7072)
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    store.create_study(&spec()).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert!(version >= 1, "migrated to the current schema");
}

#[test]
fn a_version_1_file_keeps_its_trials_and_takes_intermediate_values_of_several_objectives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    // A store as version 1 wrote it: one study, one trial with an intermediate value.
    let spec = spec();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../src/sqlite/v1.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", 0x4879_7072)
            .unwrap();
        conn.execute(
            "INSERT INTO studies (name, spec, created_at, n_trials, last_seq) VALUES (?1, ?2, 1, 1, 0)",
            rusqlite::params![spec.name, serde_json::to_string(&spec).unwrap()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO trials (study_id, number, state, params, created_at, started_at) \
             VALUES (1, 0, 'running', '{\"x\": 0.5}', 1, 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO intermediate (study_id, number, step, value) VALUES (1, 0, 3, 0.25)",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let id = store.study(&spec.name).unwrap().id;
    let trial = store.trial(id, hyperion_core::TrialNumber(0)).unwrap();
    assert_eq!(trial.intermediate.get(&3), Some(&0.25));
    assert!(trial.intermediate_others.is_empty());
    let mut two = spec.clone();
    two.name = "two".into();
    two.objectives
        .push(hyperion_core::Objective::maximize("accuracy"));
    let study = store.create_study(&two).unwrap().id;
    let created = store
        .create_trial(
            study,
            &hyperion_store::NewTrial::running(),
            None,
            &mut |_| Some(hyperion_core::Params::new().into()),
        )
        .unwrap();
    let hyperion_store::Created::Trial(t) = created else {
        panic!("{created:?}")
    };
    store.report(study, t.number, 1, &[0.5, 0.9]).unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let again = store.trial(study, t.number).unwrap();
    assert_eq!(again.intermediate_point(1, 2), Some(vec![0.5, 0.9]));
}

#[test]
fn floats_read_back_bit_for_bit() {
    // A sampled value must come back exactly, or a resumed study would see other params.
    let fixture = Fixture::new();
    let study = fixture.create_study(&spec()).unwrap();
    let mut x = 0.9413984723111455f64;
    for _ in 0..200 {
        x = (x * 7.77 + 0.123456789).fract();
        let params =
            hyperion_core::Params::from([("x".to_owned(), hyperion_core::ParamValue::Float(x))]);
        let Created::Trial(t) = fixture
            .create_trial(study.id, &NewTrial::running(), None, &mut |_| {
                Some(params.clone().into())
            })
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            fixture.trial(study.id, t.number).unwrap().params["x"],
            hyperion_core::ParamValue::Float(x)
        );
    }
}
