"""Optuna's side of `bench/run overhead`: ask+tell cycles, random sampling, in-memory storage."""

import sys

import optuna

from common import cycles

quick = "--quick" in sys.argv
checkpoints = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
cycles(study, checkpoints, "overhead")
