"""The rest of the API: stores, ask and tell, enqueue, errors, threads, the trial-script helper."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

import hyperion


def quadratic(trial):
    return sum(trial.suggest_float(f"x{i}", -5, 5) ** 2 for i in range(3))


def test_a_sqlite_study_is_reopened_with_its_trials_and_sampler(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = hyperion.create_study(study_name="s", storage=url, sampler=hyperion.samplers.TPESampler(seed=1))
    study.optimize(quadratic, n_trials=15)
    best = study.best_value
    again = hyperion.load_study(study_name="s", storage=url)
    assert len(again.trials) == 15 and again.best_value == best
    again.optimize(quadratic, n_trials=5)
    assert len(hyperion.load_study(study_name="s", storage=url).trials) == 20
    assert hyperion.get_all_study_names(url) == ["s"]
    with pytest.raises(hyperion.DuplicatedStudyError, match="load_if_exists"):
        hyperion.create_study(study_name="s", storage=url)
    assert len(hyperion.create_study(study_name="s", storage=url, load_if_exists=True).trials) == 20
    hyperion.delete_study(study_name="s", storage=url)
    with pytest.raises(KeyError):
        hyperion.load_study(study_name="s", storage=url)


def test_optuna_relative_sqlite_urls_name_a_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hyperion.create_study(study_name="rel", storage="sqlite:///rel.db").optimize(quadratic, n_trials=2)
    assert (tmp_path / "rel.db").exists()


def test_the_same_seed_gives_the_same_trials():
    def run():
        study = hyperion.create_study(study_name="seeded", sampler=hyperion.samplers.TPESampler(seed=42))
        study.optimize(quadratic, n_trials=30)
        return [t.params for t in study.trials]

    assert run() == run()


def test_ask_and_tell():
    study = hyperion.create_study(direction="maximize")
    for _ in range(5):
        trial = study.ask()
        x = trial.suggest_int("x", 0, 10)
        frozen = study.tell(trial, x * 2)
        assert frozen.state == hyperion.TrialState.COMPLETE and frozen.value == x * 2
    trial = study.ask()
    trial.suggest_int("x", 0, 10)
    study.tell(trial.number, state=hyperion.TrialState.PRUNED)
    assert study.trials[-1].state == hyperion.TrialState.PRUNED
    assert study.best_value == max(t.value for t in study.trials if t.value is not None)
    assert study.direction == "maximize"


def test_an_enqueued_trial_runs_first_with_its_params():
    study = hyperion.create_study()
    study.enqueue_trial({"x0": 1.5, "x1": -2.0, "x2": 0.0}, user_attrs={"source": "hand"})
    study.optimize(quadratic, n_trials=3)
    first = study.trials[0]
    assert first.params == {"x0": 1.5, "x1": -2.0, "x2": 0.0}
    assert first.user_attrs == {"source": "hand"}
    assert first.value == pytest.approx(1.5**2 + 4.0)


def test_grid_sampler_runs_every_point_once_then_stops():
    def objective(trial):
        return trial.suggest_int("a", 0, 10) + trial.suggest_float("b", 0, 1)

    study = hyperion.create_study(sampler=hyperion.samplers.GridSampler({"a": [1, 2, 3], "b": [0.0, 0.5]}))
    study.optimize(objective, n_trials=100)
    points = sorted((t.params["a"], t.params["b"]) for t in study.trials)
    assert points == [(a, b) for a in (1, 2, 3) for b in (0.0, 0.5)]


def test_bad_arguments_raise_clear_exceptions():
    study = hyperion.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match='"x"'):
        trial.suggest_float("x", 1, 0)
    with pytest.raises(hyperion.StorageError, match="unknown storage scheme"):
        hyperion.create_study(storage="mysql://u:secret@db/x")
    with pytest.raises(hyperion.StorageError) as caught:
        hyperion.create_study(storage="mysql://u:secret@db/x")
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match='"minimise"'):
        hyperion.create_study(direction="minimise")
    with pytest.raises(ValueError, match="not both"):
        hyperion.create_study(direction="minimize", directions=["minimize"])
    with pytest.raises(TypeError, match="hyperion.samplers"):
        hyperion.create_study(sampler=object())
    with pytest.raises(ValueError, match="max_resource"):
        hyperion.pruners.HyperbandPruner()
    trial.suggest_float("y", 0, 1)
    with pytest.raises(ValueError, match='"y"'):
        trial.suggest_int("y", 0, 1)
    with pytest.raises(ValueError, match="n_jobs"):
        study.optimize(quadratic, n_trials=1, n_jobs=0)


def test_an_exception_fails_its_trial_with_the_traceback_and_ends_optimize_unless_caught():
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 2 == 1:
            raise ArithmeticError("odd trial")
        return x

    study = hyperion.create_study()
    with pytest.raises(ArithmeticError, match="odd trial"):
        study.optimize(objective, n_trials=10)
    assert [t.state for t in study.trials] == [hyperion.TrialState.COMPLETE, hyperion.TrialState.FAIL]
    assert "Traceback" in study.trials[1].error and "odd trial" in study.trials[1].error
    study.optimize(objective, n_trials=6, catch=(ArithmeticError,))
    assert len(study.trials) == 8
    assert study.trials[-1].state == hyperion.TrialState.FAIL


def test_a_non_number_or_nan_fails_the_trial():
    study = hyperion.create_study()
    study.optimize(lambda t: "no", n_trials=1)
    study.optimize(lambda t: float("nan"), n_trials=1)
    assert [t.state for t in study.trials] == [hyperion.TrialState.FAIL] * 2
    assert "not a number" in study.trials[0].error and "NaN" in study.trials[1].error


def test_callbacks_and_stop():
    seen = []

    def callback(study, trial):
        seen.append(trial.number)
        if len(seen) == 4:
            study.stop()

    study = hyperion.create_study()
    study.optimize(quadratic, n_trials=50, callbacks=[callback])
    assert seen == [0, 1, 2, 3] and len(study.trials) == 4


def test_n_jobs_runs_objectives_that_release_the_gil_at_once():
    lock = threading.Lock()
    active = [0]
    most = [0]

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)  # sleeping releases the GIL, as numpy and PyTorch do
        with lock:
            active[0] -= 1
        return x

    study = hyperion.create_study()
    study.optimize(objective, n_trials=8, n_jobs=4)
    assert len(study.trials) == 8
    assert len({t.number for t in study.trials}) == 8
    assert all(t.state == hyperion.TrialState.COMPLETE for t in study.trials)
    assert most[0] >= 2, "objectives ran one at a time"


def test_timeout_ends_optimize():
    study = hyperion.create_study()
    study.optimize(lambda t: time.sleep(0.05) or t.suggest_float("x", 0, 1), timeout=0.3)
    assert 1 <= len(study.trials) <= 10  # 0.05 s each: at most 7 start within 0.3 s


def test_user_attrs_and_dataframe():
    def objective(trial):
        trial.set_user_attr("note", {"k": [1, 2]})
        return trial.suggest_float("x", 0, 1)

    study = hyperion.create_study()
    study.optimize(objective, n_trials=3)
    assert study.trials[0].user_attrs == {"note": {"k": [1, 2]}}
    frame = study.trials_dataframe()
    assert list(frame["number"]) == [0, 1, 2]
    assert {"value", "params_x", "state", "duration"} <= set(frame.columns)
    assert set(frame["state"]) == {"COMPLETE"}
    completed = study.get_trials(states=[hyperion.TrialState.COMPLETE])
    assert len(completed) == 3 and study.get_trials(states=[hyperion.TrialState.FAIL]) == []


def test_ctrl_c_stops_optimize_and_keeps_the_study(tmp_path):
    db = tmp_path / "c.db"
    script = f"""
import hyperion, time, sys
study = hyperion.create_study(study_name="c", storage="sqlite:///{db}")
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 3:
        print("ready", flush=True)
    time.sleep(0.1)
    return x
try:
    study.optimize(objective, n_trials=1000)
except KeyboardInterrupt:
    print("interrupted", len(study.trials), flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(2)
    out, _ = child.communicate(timeout=30)
    assert out.startswith("interrupted"), out
    study = hyperion.load_study(study_name="c", storage=f"sqlite:///{db}")
    states = [t.state for t in study.trials]
    assert hyperion.TrialState.RUNNING not in states
    assert states[-1] == hyperion.TrialState.FAIL and "KeyboardInterrupt" in study.trials[-1].error
    assert states.count(hyperion.TrialState.COMPLETE) >= 3


def test_the_wheel_installs_the_hyperion_command(tmp_path):
    url = f"sqlite:///{tmp_path}/w.db"
    hyperion.create_study(study_name="w", storage=url).optimize(quadratic, n_trials=3)
    out = subprocess.run(["hyperion", "--storage", url, "trials", "w"], capture_output=True, text=True, check=True)
    assert len([l for l in out.stdout.splitlines() if "completed" in l]) == 3, out.stdout


def test_trial_script_helpers_speak_the_trial_protocol(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    env = dict(
        os.environ,
        HYPERION_PARAMS=json.dumps({"lr": 0.1}),
        HYPERION_METRICS_FILE=str(metrics),
        HYPERION_CHECKPOINT_DIR=str(tmp_path / "ckpt"),
    )
    script = "import hyperion; p = hyperion.params(); hyperion.report(step=1, loss=p['lr'] * 2, acc=0.5); print(hyperion.checkpoint_dir().is_dir(), hyperion.restore_from(), hyperion.should_stop())"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "None", "False"]
    assert [json.loads(l) for l in metrics.read_text().splitlines()] == [{"step": 1, "loss": 0.2, "acc": 0.5}]
    env.pop("HYPERION_PARAMS")
    failed = subprocess.run([sys.executable, "-c", "import hyperion; hyperion.params()"], env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "HYPERION_PARAMS" in failed.stderr


def test_should_stop_follows_hyperion_report_outside_a_run(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    study = hyperion.create_study(
        study_name="r", storage=url, pruner=hyperion.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    good = study.ask()
    good.suggest_float("x", 0, 1)
    for step in range(3):
        good.report(0.1, step)
    study.tell(good, 0.1)
    bad = study.ask()
    bad.suggest_float("x", 0, 1)
    env = dict(os.environ, HYPERION_STORAGE=url, HYPERION_STUDY="r", HYPERION_TRIAL_NUMBER=str(bad.number))
    env.pop("HYPERION_METRICS_FILE", None)
    script = "import hyperion; hyperion.report(step=1, value=5.0); print(hyperion.should_stop())"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_an_enqueued_value_outside_its_distribution_is_refused_by_name():
    study = hyperion.create_study()
    study.enqueue_trial({"lr": 5.0})
    trial = study.ask()
    with pytest.raises(ValueError, match='"lr"'):
        trial.suggest_float("lr", 0.0, 1.0)


def test_reopening_with_another_seed_is_refused_and_keeps_the_study(tmp_path):
    url = f"sqlite:///{tmp_path}/seed.db"
    hyperion.create_study(study_name="s", storage=url, sampler=hyperion.samplers.TPESampler(seed=1)).optimize(quadratic, n_trials=3)
    with pytest.raises(ValueError, match="seed"):
        hyperion.load_study(study_name="s", storage=url, sampler=hyperion.samplers.TPESampler(seed=2))
    assert len(hyperion.load_study(study_name="s", storage=url).trials) == 3


def test_tpe_and_cmaes_model_a_define_by_run_objective():
    # Python objectives are define-by-run: the samplers draw the parameters every completed
    # trial has together, at the trial's first suggestion, rather than one at a time.
    def sphere(trial):
        return sum(trial.suggest_float(f"x{i}", -5.0, 5.0) ** 2 for i in range(5))

    def best(sampler):
        study = hyperion.create_study(sampler=sampler)
        study.optimize(sphere, n_trials=200)
        return study.best_value

    random = best(hyperion.samplers.RandomSampler(seed=3))
    for sampler in (hyperion.samplers.TPESampler(seed=3), hyperion.samplers.CmaEsSampler(seed=3)):
        assert best(sampler) < random / 50, type(sampler).__name__


def test_nsga2_sampler_finds_a_better_front_than_random():
    def zdt1(trial):
        x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(5)]
        g = 1 + 9 * sum(x[1:]) / 4
        return x[0], g * (1 - (x[0] / g) ** 0.5)

    def hypervolume(sampler):
        study = hyperion.create_study(directions=["minimize", "minimize"], sampler=sampler)
        study.optimize(zdt1, n_trials=1000)
        area, ceiling = 0.0, 1.1
        for f1, f2 in sorted(t.values for t in study.best_trials):
            if f1 < 1.1 and f2 < ceiling:
                area += (1.1 - f1) * (ceiling - f2)
                ceiling = f2
        return area

    nsga2 = hypervolume(hyperion.samplers.NSGAIISampler(seed=2))
    random = hypervolume(hyperion.samplers.RandomSampler(seed=2))
    assert nsga2 > 0.8 and nsga2 > random + 0.05, (nsga2, random)
    with pytest.raises(ValueError, match="constraints_func"):
        hyperion.samplers.NSGAIISampler(constraints_func=lambda t: [0.0])
