"""bench/run pipeline: a 27-trial 3x3x3 grid over (p, t, e), the params of a prepare, a train and
an eval stage that sleep 1 s, 0.2 s and 0.1 s, at 4 trials at once, three ways in the same run:
Hyperion with its stage cache, Hyperion with every stage `cache: false`, and DVC (3.x) as its
users run such a sweep (`dvc exp run --queue -S ...` per point, then `dvc queue start -j 4`).
Each stage appends a line to a count file, so executions are counted the same way on every side.
Then the cache engine's own cost per stage (key, lookup, claim, commit; and a hit) from
`hyperion-bench pipeline-engine`. Last line: JSON.

Run through bench/run (it builds the release binaries and installs DVC into bench/.venv).
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HYPERION = ROOT / "target" / "release" / "hyperion"
BENCH = ROOT / "target" / "release" / "hyperion-bench"
DVC = Path(os.environ.get("HYPERION_BENCH_PYTHON", sys.executable)).parent / "dvc"
VALUES = [1, 2, 3]
AT_ONCE = 4
SLEEP = {"prepare": 1.0, "train": 0.2, "eval": 0.1}


def scripts(where: Path, counts: Path) -> None:
    """The three stages: each counts itself, sleeps, and writes its output."""
    counts.mkdir(parents=True, exist_ok=True)
    (where / "prep.sh").write_text(
        f'echo run >> "{counts}/prepare.log"\nsleep {SLEEP["prepare"]}\n'
        'mkdir -p "$(dirname "$2")"\necho "features $1" > "$2"\n')
    (where / "train.sh").write_text(
        f'echo run >> "{counts}/train.log"\nsleep {SLEEP["train"]}\n'
        'mkdir -p "$(dirname "$3")"\ncat "$1" > "$3"\necho "t $2" >> "$3"\n')
    # With a third argument, the metric goes to that file (DVC); else to stdout (Hyperion).
    (where / "eval.sh").write_text(
        f'echo run >> "{counts}/eval.log"\nsleep {SLEEP["eval"]}\n'
        "loss=$(awk -v e=\"$2\" 'NR==1{p=$2} NR==2{t=$2} END{print p*t*e}' \"$1\")\n"
        'if [ -n "$3" ]; then echo "{\\"loss\\": $loss}" > "$3"; '
        'else echo "HYPERION_METRIC {\\"loss\\": $loss}"; fi\n')


def count(counts: Path) -> dict:
    runs = {}
    for stage in SLEEP:
        path = counts / f"{stage}.log"
        runs[stage] = len(path.read_text().splitlines()) if path.exists() else 0
    return runs


def hyperion(cache: bool) -> dict:
    where = Path(tempfile.mkdtemp(prefix="hyperion-pipeline-"))
    counts = where / "counts"
    scripts(where, counts)
    off = "" if cache else "\n    cache: false"
    choices = ", ".join(map(str, VALUES))
    (where / "study.yaml").write_text(
        "name: bench\nmethod: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n"
        + "".join(f"  {p}: {{type: categorical, choices: [{choices}]}}\n" for p in "pte")
        + f"resources: {{max_concurrent: {AT_ONCE}}}\nstages:\n"
        f"  prepare:\n    command: sh prep.sh {{p}} {{out}}/features\n    params: [p]\n"
        f"    code: [prep.sh]\n    outputs: [features]{off}\n"
        f"  train:\n    command: sh train.sh {{in.prepare}}/features {{t}} {{out}}/model\n"
        f"    needs: [prepare]\n    params: [t]\n    code: [train.sh]\n    outputs: [model]{off}\n"
        f"  eval:\n    command: sh eval.sh {{in.train}}/model {{e}}\n    needs: [train]\n"
        f"    params: [e]\n    code: [eval.sh]{off}\n")
    env = dict(os.environ)
    env.pop("HYPERION_STORAGE", None)
    started = time.perf_counter()
    subprocess.run([str(HYPERION), "run", "study.yaml", "-q"], cwd=where, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    status = json.loads(subprocess.run([str(HYPERION), "status", "bench", "--json"], cwd=where,
                                       env=env, check=True, capture_output=True,
                                       text=True).stdout)[0]
    assert status["completed"] == 27, status
    runs = count(counts)
    shutil.rmtree(where)
    return {"wall_s": wall, "runs": runs}


def dvc() -> dict:
    where = Path(tempfile.mkdtemp(prefix="dvc-pipeline-"))
    counts = where.parent / (where.name + "-counts")
    scripts(where, counts)
    (where / "dvc.yaml").write_text(
        "stages:\n"
        "  prepare:\n    cmd: sh prep.sh ${p} features\n    deps: [prep.sh]\n"
        "    params: [p]\n    outs: [features]\n"
        "  train:\n    cmd: sh train.sh features ${t} model\n    deps: [train.sh, features]\n"
        "    params: [t]\n    outs: [model]\n"
        "  eval:\n    cmd: sh eval.sh model ${e} metrics.json\n    deps: [eval.sh, model]\n"
        "    params: [e]\n    metrics: [{metrics.json: {cache: false}}]\n")
    (where / "params.yaml").write_text("p: 1\nt: 1\ne: 1\n")
    env = dict(os.environ)
    # DVC starts its queue's workers as `dvc` processes found on PATH.
    env["PATH"] = f"{DVC.parent}:{env['PATH']}"
    env.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    run = lambda *argv: subprocess.run(argv, cwd=where, env=env, check=True,  # noqa: E731
                                       capture_output=True, text=True).stdout
    run("git", "init", "-q")
    run(str(DVC), "init", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "pipeline")
    started = time.perf_counter()
    for p, t, e in itertools.product(VALUES, VALUES, VALUES):
        run(str(DVC), "exp", "run", "--queue", "-S", f"p={p}", "-S", f"t={t}", "-S", f"e={e}")
    queued = time.perf_counter() - started
    started = time.perf_counter()
    run(str(DVC), "queue", "start", "-j", str(AT_ONCE))
    # DVC has no command that waits for its queue: ask every 0.2 s (at most 0.2 s too late).
    while True:
        status = run(str(DVC), "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        if "0 active, 0 idle" in status and time.perf_counter() - started > 60:
            sys.exit(f"DVC's queue has no worker left:\n{status}")
        time.sleep(0.2)
    wall = time.perf_counter() - started
    succeeded = status.count("Success")
    run(str(DVC), "queue", "stop")
    runs = count(counts)
    shutil.rmtree(where)
    shutil.rmtree(counts)
    return {"wall_s": wall, "queue_s": queued, "runs": runs, "succeeded": succeeded}


def engine(quick: bool) -> dict:
    out = subprocess.run([str(BENCH), "pipeline-engine"] + (["--quick"] if quick else []),
                         check=True, capture_output=True, text=True).stdout
    return {r["stage"]: r for r in map(json.loads, out.splitlines())}


def main() -> None:
    quick = "--quick" in sys.argv
    cached = hyperion(cache=True)
    uncached = hyperion(cache=False)
    peer = dvc()
    costs = engine(quick)
    print(f"{'':24} {'wall s':>8} {'prepare':>8} {'train':>6} {'eval':>5}")
    for name, r in [("hyperion (cache)", cached), ("hyperion (no cache)", uncached),
                    ("dvc exp queue -j 4", peer)]:
        runs = r["runs"]
        print(f"{name:24} {r['wall_s']:8.2f} {runs['prepare']:8} {runs['train']:6} "
              f"{runs['eval']:5}")
    print(f"dvc: {peer['succeeded']} of 27 experiments succeeded; queueing them took "
          f"{peer['queue_s']:.1f} s more (not in its wall time)")
    for what in ("miss", "hit"):
        c = costs[what]
        print(f"cache engine, a {what}: median {c['median_ms']:.3f} ms, p95 {c['p95_ms']:.3f} ms "
              f"over {c['stages']} stages")
    print(json.dumps({
        "suite": "pipeline",
        "prepare_runs": cached["runs"]["prepare"],
        "train_runs": cached["runs"]["train"],
        "eval_runs": cached["runs"]["eval"],
        "wall_s": round(cached["wall_s"], 2),
        "wall_s_nocache": round(uncached["wall_s"], 2),
        "dvc_wall_s": round(peer["wall_s"], 2),
        "dvc_prepare_runs": peer["runs"]["prepare"],
        "dvc_succeeded": peer["succeeded"],
        "ratio_vs_dvc": round(peer["wall_s"] / cached["wall_s"], 2),
        "engine_ms_per_stage": round(costs["miss"]["median_ms"], 3),
        "engine_ms_per_hit": round(costs["hit"]["median_ms"], 3),
    }))


if __name__ == "__main__":
    main()
