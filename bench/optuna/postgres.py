"""Optuna's side of `bench/run postgres`: ask+tell cycles on its RDBStorage over PostgreSQL
(SQLAlchemy + psycopg 3), from 1, 8 and 32 processes sharing one study, as a user would spread
a study over many workers with a database server as the store. Besides the rate it checks the
store's correctness under that load: cycles that raised, duplicate trial numbers, and trials
left unfinished.

The server is HYPERION_BENCH_POSTGRES (bench/run starts it and sets it); the run works in a
database of its own, optuna_bench_<pid>, created at the start and dropped at the end."""

import collections
import multiprocessing
import os
import sys
import time

import optuna
import psycopg
import sqlalchemy
from psycopg import sql
from optuna.trial import TrialState

from common import cycle, emit

quick = "--quick" in sys.argv
# (processes, cycles per process)
RUNS = [(1, 100), (8, 20), (32, 8)] if quick else [(1, 300), (8, 60), (32, 20)]
SERVER = os.environ.get("HYPERION_BENCH_POSTGRES",
                        "postgresql://hyperion:hyperion@127.0.0.1:5432/hyperion")
DATABASE = f"optuna_bench_{os.getpid()}"
URL = (sqlalchemy.engine.make_url(SERVER)
       .set(drivername="postgresql+psycopg", database=DATABASE)
       .render_as_string(hide_password=False))


def storage():
    # Optuna's default engine (SQLAlchemy's QueuePool): what its users get. It opens connections
    # lazily, only as many as are checked out at once; a single-threaded worker peaks at two
    # (measured), so 32 processes hold 64 of the server's 200 connections.
    return optuna.storages.RDBStorage(URL)


def admin(statement):
    # CREATE/DROP DATABASE cannot run in a transaction, hence autocommit.
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(statement)


def worker(name, count, results):
    errors = collections.Counter()
    first = None
    done = 0
    try:
        study = optuna.load_study(study_name=name, storage=storage(),
                                  sampler=optuna.samplers.RandomSampler())
    except Exception as e:  # a process that cannot load the study fails all its cycles
        results.put((0, count, {type(e).__name__: count}, repr(e)))
        return
    for _ in range(count):
        # A failed cycle is counted, not fatal: the point is to see how often the store fails.
        try:
            cycle(study)
            done += 1
        except Exception as e:
            errors[type(e).__name__] += 1
            first = first or repr(e)
    results.put((done, count - done, dict(errors), first))


def run(processes, per_process):
    name = f"bench{processes}"
    parent = storage()
    optuna.create_study(study_name=name, storage=parent, direction="minimize",
                        sampler=optuna.samplers.RandomSampler(seed=0))
    # The children are forked: they must not inherit the parent's pooled connections (two
    # processes on one socket corrupt the protocol), so empty the pool first.
    parent.engine.dispose()

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(name, per_process, results))
             for _ in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - started

    done = errors = 0
    kinds = collections.Counter()
    first = None
    for p in procs:
        if p.exitcode != 0:
            sys.exit(f"an Optuna worker died with exit code {p.exitcode}")
        d, e, k, f = results.get(timeout=10)
        done, errors = done + d, errors + e
        kinds.update(k)
        first = first or f
    if errors:
        print(f"postgres: {processes} processes: {errors} failed cycles {dict(kinds)}; "
              f"first: {first}", file=sys.stderr)

    trials = optuna.load_study(study_name=name, storage=parent).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    unfinished = sum(t.state != TrialState.COMPLETE for t in trials)
    parent.engine.dispose()
    # cycles counts the cycles that succeeded, so per_s is the store's useful rate.
    emit(impl="optuna", suite="postgres", processes=processes, cycles=done, seconds=seconds,
         per_s=done / seconds, errors=errors, duplicates=len(numbers) - len(set(numbers)),
         unfinished=unfinished)


def main():
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    try:
        for processes, per_process in RUNS:
            run(processes, per_process)
    finally:
        # FORCE ends any connection still open (a worker killed mid-cycle), which DROP would
        # otherwise wait for.
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(DATABASE)))


if __name__ == "__main__":
    main()
