"""Optuna's side of `bench/run launch`: ask/tell with a subprocess per trial, as a user would
drive a command-line trial from Python (in-memory storage, Optuna's fastest)."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import optuna
from optuna.distributions import FloatDistribution

from common import emit

quick = "--quick" in sys.argv
trials = 100 if quick else 500
ARGV = ["echo", "HYPERION_METRIC", '{"v": 1}']
DISTRIBUTIONS = {"x": FloatDistribution(0.0, 1.0)}


def one(study):
    trial = study.ask(DISTRIBUTIONS)
    out = subprocess.run(ARGV, capture_output=True, text=True, check=True).stdout
    study.tell(trial, float(out.split('"v": ')[1].rstrip("}\n")))


for concurrency in (1, 8):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: one(study), range(trials)))
    seconds = time.perf_counter() - started
    emit(impl="optuna", suite="launch", concurrency=concurrency, trials=trials, seconds=seconds,
         per_s=trials / seconds)
