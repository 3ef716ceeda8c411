"""bench/run slurm: 200 trivial trials at 16 jobs at once on the local Slurm, three ways in the
same run -- Hyperion (`hyperion run`, executor slurm), submitit (Hydra's Slurm launcher:
`map_array` with an array parallelism of 16) and the floor (a shell loop of sbatch that keeps 16
jobs submitted and polls squeue once per second). Each runner's squeue and sacct calls are
counted by shims on its PATH. Rounds alternate the runners; each runner's best round counts.
Last line: JSON.

Run through bench/run (it builds the release binary, starts Slurm and installs submitit).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIALS = 200
AT_ONCE = 16
ROOT = Path(__file__).resolve().parent.parent
HYPERION = ROOT / "target" / "release" / "hyperion"
PYTHON = os.environ.get("HYPERION_BENCH_PYTHON", sys.executable)


def shims(where: Path) -> dict:
    """A PATH whose squeue, sacct and sbatch count their calls in `where`."""
    bin_dir = where / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("squeue", "sacct", "sbatch"):
        real = shutil.which(tool)
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho >> "{where}/{tool}.calls"\nexec {real} "$@"\n')
        script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.pop("HYPERION_STORAGE", None)
    return env


def calls(where: Path, tool: str) -> int:
    path = where / f"{tool}.calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def hyperion(where: Path, env: dict) -> None:
    (where / "trial.sh").write_text('echo "HYPERION_METRIC {\\"loss\\": $1}"\n')
    (where / "study.yaml").write_text(
        "name: bench\ncommand: [sh, trial.sh, '{x}']\n"
        "parameters: {x: {type: float, low: 0.0, high: 1.0}}\nmetric: {name: loss}\n"
        f"budget: {{max_trials: {TRIALS}}}\n"
        f"resources: {{max_concurrent: {AT_ONCE}, executor: slurm}}\nslurm: {{time: 5m}}\n"
    )
    subprocess.run([str(HYPERION), "run", "study.yaml", "-q"], cwd=where, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run([str(HYPERION), "status", "bench", "--json"], cwd=where, env=env,
                         check=True, capture_output=True, text=True).stdout
    completed = json.loads(out)[0]["completed"]
    assert completed == TRIALS, out


SUBMITIT = f"""
import submitit, sys
def trivial(x):
    return x * x
ex = submitit.AutoExecutor(folder=sys.argv[1])
ex.update_parameters(timeout_min=5, slurm_array_parallelism={AT_ONCE}, cpus_per_task=1)
jobs = ex.map_array(trivial, range({TRIALS}))
results = [j.result() for j in jobs]
assert results == [x * x for x in range({TRIALS})], results
"""


def submitit(where: Path, env: dict) -> None:
    (where / "run.py").write_text(SUBMITIT)
    subprocess.run([PYTHON, "run.py", str(where / "jobs")], cwd=where, env=env, check=True,
                   stdout=subprocess.DEVNULL)


FLOOR = f"""
set -eu
submitted=0; running=0
while [ $submitted -lt {TRIALS} ] || [ $running -gt 0 ]; do
    while [ $running -lt {AT_ONCE} ] && [ $submitted -lt {TRIALS} ]; do
        sbatch --parsable --job-name=floor-$$ --output=/dev/null --time=5 --wrap true >/dev/null
        submitted=$((submitted + 1)); running=$((running + 1))
    done
    sleep 1
    running=$(squeue --noheader --me --name=floor-$$ --states=PENDING,RUNNING,CONFIGURING,COMPLETING --format=%i | wc -l)
done
"""


def floor(where: Path, env: dict) -> None:
    subprocess.run(["bash", "-c", FLOOR], cwd=where, env=env, check=True)


def measure(name, run, round_no):
    where = Path(tempfile.mkdtemp(prefix=f"bench-slurm-{name}-"))
    env = shims(where)
    start = time.perf_counter()
    run(where, env)
    seconds = time.perf_counter() - start
    row = {"suite": "slurm", "runner": name, "round": round_no, "seconds": round(seconds, 3),
           "squeue_calls": calls(where, "squeue"), "sacct_calls": calls(where, "sacct"),
           "sbatch_calls": calls(where, "sbatch")}
    print(json.dumps(row), file=sys.stderr, flush=True)
    shutil.rmtree(where, ignore_errors=True)
    return row


def main():
    rounds = 1 if "--quick" in sys.argv else 3
    runners = [("hyperion", hyperion), ("submitit", submitit), ("floor", floor)]
    best = {}
    for r in range(rounds):
        # A different order each round: the one that runs first meets a fresh queue.
        order = runners[r % 3:] + runners[:r % 3]
        for name, run in order:
            row = measure(name, run, r)
            if name not in best or row["seconds"] < best[name]["seconds"]:
                best[name] = row
    h, s, f = best["hyperion"], best["submitit"], best["floor"]
    print(f"{'runner':<10} {'best s':>8} {'squeue':>7} {'sacct':>6} {'sbatch':>7}")
    for name in ("hyperion", "submitit", "floor"):
        b = best[name]
        print(f"{name:<10} {b['seconds']:>8.2f} {b['squeue_calls']:>7} {b['sacct_calls']:>6} "
              f"{b['sbatch_calls']:>7}")
    overhead = (h["seconds"] - f["seconds"]) / TRIALS * 1000
    print(f"Hyperion beyond the floor: {overhead:.1f} ms per trial (goal < 50); "
          f"Hyperion / submitit time: {h['seconds'] / s['seconds']:.2f} (goal <= 1)")
    print(json.dumps({
        "suite": "slurm", "trials": TRIALS, "at_once": AT_ONCE, "rounds": rounds,
        "hyperion_s": h["seconds"], "submitit_s": s["seconds"], "floor_s": f["seconds"],
        "overhead_ms_per_trial": round(overhead, 1),
        "hyperion_over_submitit": round(h["seconds"] / s["seconds"], 3),
        "hyperion_squeue_calls": h["squeue_calls"], "hyperion_sacct_calls": h["sacct_calls"],
        "submitit_squeue_calls": s["squeue_calls"], "submitit_sacct_calls": s["sacct_calls"],
        "floor_squeue_calls": f["squeue_calls"],
    }))


if __name__ == "__main__":
    main()
