"""Optuna's side of `bench/run store`: ask+tell cycles on its SQLite storage (RDBStorage), one
process and four sharing the file. Optuna manages ~20 cycles/s here, so its runs are short:
checkpoints at 100 and 200 trials, and 4 x 50 cycles for the shared study."""

import multiprocessing
import os
import sys
import tempfile
import time

import optuna

from common import cycle, cycles, emit

quick = "--quick" in sys.argv


def url(path):
    return f"sqlite:///{path}"


def worker(path, count):
    study = optuna.load_study(study_name="bench", storage=url(path),
                              sampler=optuna.samplers.RandomSampler())
    for _ in range(count):
        cycle(study)


def main():
    scratch = tempfile.mkdtemp(prefix="optuna-bench-")
    path = os.path.join(scratch, "store.db")
    study = optuna.create_study(study_name="bench", storage=url(path), direction="minimize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    cycles(study, [100] if quick else [100, 200], "store")

    shared = os.path.join(scratch, "store4.db")
    optuna.create_study(study_name="bench", storage=url(shared), direction="minimize")
    per_worker = 25 if quick else 50
    started = time.perf_counter()
    procs = [multiprocessing.Process(target=worker, args=(shared, per_worker)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"an Optuna worker failed with exit code {p.exitcode}")
    seconds = time.perf_counter() - started
    emit(impl="optuna", suite="store", processes=4, cycles=4 * per_worker, seconds=seconds,
         per_s=4 * per_worker / seconds)


if __name__ == "__main__":
    main()
