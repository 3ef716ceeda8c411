use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

const LEASE: Duration = Duration::from_secs(60);

fn material(stage: &str, n: i64) -> KeyMaterial {
    KeyMaterial {
        schema: key::SCHEMA,
        stage: stage.into(),
        argv: vec!["prep".into()],
        shell: false,
        env: BTreeMap::new(),
        params: [("n".to_string(), serde_json::json!(n))].into(),
        code: BTreeMap::new(),
        inputs: BTreeMap::new(),
        upstream: BTreeMap::new(),
        version: None,
    }
}

fn run(cache: &Cache, m: &KeyMaterial) -> Claim {
    match cache.lookup(m, LEASE, 0, "t").unwrap() {
        Lookup::Run(claim) => claim,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[test]
fn a_missing_key_is_claimed_once_then_waited_on_then_hit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let m = material("prepare", 1);
    let claim = run(&cache, &m);
    assert_eq!(claim.epoch, 1);
    // A second process of the same cache sees the claim.
    let other = Cache::open(dir.path()).unwrap();
    assert_eq!(other.lookup(&m, LEASE, 0, "t").unwrap(), Lookup::Wait);
    fs::write(claim.out().join("features.txt"), "x").unwrap();
    let entry = cache.commit(&claim, &["features.txt".into()]).unwrap();
    assert_eq!(
        fs::read_to_string(entry.out().join("features.txt")).unwrap(),
        "x"
    );
    assert_eq!(other.lookup(&m, LEASE, 0, "t").unwrap(), Lookup::Hit(entry));
    let stats = cache.stats().unwrap();
    assert_eq!((stats[0].runs, stats[0].hits, stats[0].ready), (1, 1, 1));
    assert_eq!(cache.clean_tmp().unwrap(), 0, "nothing left in tmp/");
}

#[test]
fn a_missing_output_fails_the_commit_and_the_first_commit_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let m = material("prepare", 2);
    let claim = run(&cache, &m);
    let err = cache.commit(&claim, &["model.bin".into()]).unwrap_err();
    assert!(
        err.to_string().contains("did not write `model.bin`"),
        "{err}"
    );
    // A taken-over claim that commits second keeps the first bytes.
    fs::write(claim.out().join("a"), "first").unwrap();
    let first = cache.commit(&claim, &[]).unwrap();
    let late = Claim {
        epoch: 2,
        dir: dir.path().join("tmp/late"),
        ..claim.clone()
    };
    fs::create_dir_all(late.out()).unwrap();
    fs::write(late.out().join("a"), "second").unwrap();
    let kept = cache.commit(&late, &[]).unwrap();
    assert_eq!(kept.digest, first.digest);
    assert_eq!(fs::read_to_string(kept.out().join("a")).unwrap(), "first");
    assert!(!late.dir.exists());
}

#[test]
fn a_dead_claimants_claim_is_taken_over_and_its_finished_work_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let m = material("train", 3);
    run(&cache, &m);
    // Pretend a process that is gone owns it.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let owner = format!("{}:{pid}", cache.owner.rsplit_once(':').unwrap().0);
    cache
        .conn()
        .execute("UPDATE entries SET owner = ?1", [&owner])
        .unwrap();
    let taken = run(&cache, &m);
    assert_eq!(taken.epoch, 2, "taken over with the next epoch");

    // Finished but never committed: adopted instead of rerun.
    fs::write(taken.out().join("w"), "weights").unwrap();
    fs::write(
        taken.dir.join("done.json"),
        serde_json::json!({"digest": digest::of_path(&taken.out()).unwrap()}).to_string(),
    )
    .unwrap();
    cache
        .conn()
        .execute("UPDATE entries SET lease_until = 0", [])
        .unwrap();
    match cache.lookup(&m, LEASE, 0, "t").unwrap() {
        Lookup::Hit(entry) => {
            assert_eq!(
                fs::read_to_string(entry.out().join("w")).unwrap(),
                "weights"
            )
        }
        other => panic!("expected the finished work adopted, got {other:?}"),
    }
}

#[test]
fn a_failing_stage_runs_retries_plus_one_times_then_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let m = material("prepare", 4);
    let mut runs = 0;
    loop {
        match cache.lookup(&m, LEASE, 2, "t").unwrap() {
            Lookup::Run(claim) => {
                runs += 1;
                cache.fail(&claim, "exit code 1").unwrap();
            }
            Lookup::Failed(error) => {
                assert_eq!(error, "exit code 1");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(runs, 3);
}

#[test]
fn explain_names_what_changed_and_forget_removes_a_stage() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let claim = run(&cache, &material("prepare", 5));
    cache.commit(&claim, &[]).unwrap();
    assert_eq!(cache.explain(&material("prepare", 5)).unwrap(), None);
    let (_, changes) = cache.explain(&material("prepare", 6)).unwrap().unwrap();
    assert_eq!(changes, vec!["params.n: 5 → 6"]);
    assert_eq!(cache.forget("prepare").unwrap(), 1);
    assert!(matches!(
        cache
            .lookup(&material("prepare", 5), LEASE, 0, "t")
            .unwrap(),
        Lookup::Run(_)
    ));
}

#[test]
fn gc_evicts_the_least_recently_used_until_under_the_size_but_never_what_a_live_run_needs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut keys = Vec::new();
    for n in 0..4 {
        let m = material("prepare", n);
        let claim = Claim {
            holder: format!("trial {n}"),
            ..run(&cache, &m)
        };
        fs::write(claim.out().join("data"), vec![b'x'; 1000]).unwrap();
        keys.push(cache.commit(&claim, &[]).unwrap().key);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Trial 0 (the oldest entry) is still running; trials 1-3 are done.
    for n in 1..4 {
        cache.unpin(&format!("trial {n}")).unwrap();
    }
    // A run that is gone pinned entry 1: that holds nothing.
    let gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    let mut gone = gone;
    gone.wait().unwrap();
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    rusqlite::Connection::open(dir.path().join("index.sqlite"))
        .unwrap()
        .execute(
            "INSERT INTO pins (key, owner, holder) VALUES (?1, ?2, 'trial 1')",
            [&keys[1], &format!("{}:{pid}", host.trim())],
        )
        .unwrap();
    fs::create_dir_all(dir.path().join("tmp/stale.1")).unwrap();

    let collected = cache.gc(Some(2500)).unwrap();
    assert_eq!(collected.tmp_removed, 1);
    assert_eq!((collected.evicted, collected.kept_in_use), (2, 1));
    assert!(collected.bytes_after <= 2500, "{collected:?}");
    assert!(collected.bytes_before > 4000, "{collected:?}");
    let hit = |n| {
        let found = cache.lookup(&material("prepare", n), LEASE, 0, "t");
        matches!(found.unwrap(), Lookup::Hit(_))
    };
    assert!(hit(0), "the running trial's entry is kept");
    assert!(hit(3), "the most recently used entry is kept");
    assert!(!hit(1) && !hit(2), "the others went, oldest first");
}

#[test]
fn claiming_a_ready_key_again_replaces_its_entry_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let m = material("eval", 1);
    let claim = run(&cache, &m);
    fs::write(claim.out().join("a"), "first").unwrap();
    cache.commit(&claim, &[]).unwrap();
    let Lookup::Run(again) = cache.claim_again(&m, LEASE, "t").unwrap() else {
        panic!("a ready key is claimed again");
    };
    assert_eq!(
        cache.lookup(&m, LEASE, 0, "u").unwrap(),
        Lookup::Wait,
        "while it runs"
    );
    fs::write(again.out().join("a"), "second").unwrap();
    let entry = cache.commit(&again, &[]).unwrap();
    assert_eq!(fs::read_to_string(entry.out().join("a")).unwrap(), "second");
    assert_eq!(cache.lookup(&m, LEASE, 0, "u").unwrap(), Lookup::Hit(entry));
}
