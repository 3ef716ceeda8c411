"""First meaningful paint of a study page in headless Chromium, and the server's memory:
`hyperion dashboard` beside optuna-dashboard 0.21.0 over Optuna SQLite storages of the same
shape (10 floats in [-5, 5], loss = sum of squares, a 20-step curve every tenth trial).

Both are timed alike: from just before the WebDriver navigate to the first poll (a script run
in the page every ~20 ms) that sees the paint; the median of `--loads` loads, each in a new
browser session. WebDriver is spoken over HTTP with the standard library only.
stderr: progress and a table; stdout: one JSON line."""

import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--window-size=1400,1000"]
# The page's own signal: body.dataset.ready becomes the hash once counts, plots and the first
# table page are drawn (or "error").
HYPERION_PAINT = ("const r = document.body && document.body.dataset.ready;"
                  "return r === 'error' ? 'error' : (r && r === location.hash ? 'ok' : null);")
# optuna-dashboard draws its history with Plotly into #plot-history, which exists (with an
# empty plot) before the study is fetched; an SVG marker exists only once trials are drawn.
OPTUNA_PAINT = ("return document.querySelector("
                "'#plot-history .scatterlayer .trace .points path') ? 'ok' : null;")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def usage(pid):
    """(RSS in MB, CPU seconds so far) of `pid` and all its descendants."""
    children, stats = {}, {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stats[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(stats[int(entry)][1]), []).append(int(entry))
    kb = ticks = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            kb += int(next(line.split()[1] for line in Path(f"/proc/{p}/status").open()
                           if line.startswith("VmRSS:")))
            ticks += int(stats[p][11]) + int(stats[p][12])
        except (OSError, KeyError, StopIteration):
            pass
    return kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


def settle(pid, limit_s):
    """Waits until the server is idle (< 5% of a core over 0.5 s): a closed page's requests
    (optuna-dashboard's parameter importances) go on in the server and would slow the next."""
    deadline, before = time.monotonic() + limit_s, usage(pid)[1]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = usage(pid)[1]
        if now - before < 0.025:
            return
        before = now
    log(f"  (server still busy after {limit_s:.0f} s)")


class Processes:
    """Everything started here, each in its own process group, so that killing the group also
    ends what it forked (chromedriver's Chromium)."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        self.procs.append(subprocess.Popen(args, start_new_session=True,
                                           stdin=subprocess.DEVNULL, **kw))
        return self.procs[-1]

    def stop(self, proc):
        self.procs.remove(proc)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop_all(self):
        while self.procs:
            self.stop(self.procs[-1])


class WebDriverError(Exception):
    pass


class Driver:
    """chromedriver on a free port; every load gets a new session, so a fresh Chromium."""

    def __init__(self, procs, timeout_s):
        self.port, self.timeout_s = free_port(), timeout_s
        procs.start(["/usr/bin/chromedriver", f"--port={self.port}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("GET", "/status")
                return
            except (OSError, WebDriverError):
                if time.monotonic() > deadline:
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.05)

    def call(self, method, path, body=None):
        data = json.dumps(body or {}).encode() if method == "POST" else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s + 60) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:
            value = json.load(e).get("value", {})
            raise WebDriverError(f"{value.get('error')}: {value.get('message', '')[:200]}")

    def paint_ms(self, url, condition):
        """Milliseconds from the navigate to the first poll where `condition` returns 'ok'."""
        # pageLoadStrategy none: navigate returns at once and the polls watch the page from its
        # first moment, not from its load event.
        chrome = {"binary": "/usr/bin/chromium", "args": CHROME_ARGS}
        caps = {"capabilities": {"alwaysMatch": {"pageLoadStrategy": "none",
                                                 "goog:chromeOptions": chrome}}}
        session = f"/session/{self.call('POST', '/session', caps)['sessionId']}"
        ms = int(self.timeout_s * 1000)
        try:
            self.call("POST", f"{session}/timeouts", {"script": ms, "pageLoad": ms})
            start = time.perf_counter()
            self.call("POST", f"{session}/url", {"url": url})
            while True:
                polled = time.perf_counter()
                try:
                    state = self.call("POST", f"{session}/execute/sync",
                                      {"script": condition, "args": []})
                except WebDriverError as e:
                    # A poll in mid-navigation may fail; a dead tab does not come back.
                    if re.search(r"crash|disconnected|invalid session", str(e)):
                        raise RuntimeError(f"browser: {e}")
                    state = None
                now = time.perf_counter()
                if state == "ok":
                    return (now - start) * 1e3
                if state == "error":
                    raise RuntimeError("the page reported an error")
                if now - start > self.timeout_s:
                    raise RuntimeError("timeout")
                time.sleep(max(0.0, 0.02 - (now - polled)))
        finally:
            try:
                self.call("DELETE", session)
            except (OSError, WebDriverError):
                pass


def build_optuna_storage(n):
    """An Optuna SQLite storage of `n` trials shaped like the Hyperion bench's study, cached."""
    import optuna
    from optuna.distributions import FloatDistribution

    path = OUT / f"optuna-dash-{n}.db"
    if path.exists():
        with sqlite3.connect(path) as db:
            count = db.execute("SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
                               "WHERE study_name = 'dash' AND state = 'COMPLETE'").fetchone()[0]
        if count == n:
            log(f"reused {path} ({n} trials)")
            return path
        log(f"{path} has {count} trials, not {n}: rebuilding")
        path.unlink()
    OUT.mkdir(exist_ok=True)
    tmp = path.with_suffix(".db.tmp")  # renamed when complete, so never reused half-built
    tmp.unlink(missing_ok=True)

    def connect():
        # Optuna commits once per trial; spare it the fsyncs and the on-disk journal. Neither
        # pragma persists in the file, which stays an ordinary Optuna SQLite storage.
        conn = sqlite3.connect(tmp, check_same_thread=False)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = MEMORY")
        return conn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}", engine_kwargs={"creator": connect})
    study = optuna.create_study(study_name="dash", storage=storage, direction="minimize")
    dists = {f"x{i}": FloatDistribution(-5.0, 5.0) for i in range(10)}
    rng, started, batch = random.Random(1), time.perf_counter(), max(1, n // 20)
    for first in range(0, n, batch):
        trials = []
        for i in range(first, min(n, first + batch)):
            params = {name: rng.uniform(-5.0, 5.0) for name in dists}
            loss = sum(x * x for x in params.values())
            curve = {s: loss * (1 + 1 / (s + 1)) for s in range(20)} if i % 10 == 0 else None
            trials.append(optuna.trial.create_trial(params=params, distributions=dists,
                                                    value=loss, intermediate_values=curve))
        study.add_trials(trials)
        log(f"  optuna storage: {first + len(trials)}/{n} trials, "
            f"{time.perf_counter() - started:.0f} s")
    storage.engine.dispose()
    os.replace(tmp, path)
    log(f"built {path} in {time.perf_counter() - started:.1f} s")
    return path


def loads(driver, server, url, condition, count, what):
    """Up to `count` paints; stops at the first failure (a timeout would only repeat)."""
    times = []
    for i in range(count):
        settle(server.pid, driver.timeout_s)
        try:
            times.append(driver.paint_ms(url, condition))
        except RuntimeError as e:
            log(f"  {what}: load {i + 1} failed: {e}")
            return times, str(e)
        log(f"  {what}: load {i + 1}: {times[-1]:.0f} ms")
    return times, None


def hyperion(procs, driver, args):
    server = procs.start([args.hyperion_bin, "dashboard", "--bind", "127.0.0.1:0",
                          "--storage", args.hyperion_db],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if not (match := re.search(r"http://\S+", line)):
        raise RuntimeError(f"hyperion dashboard printed {line!r}")
    # Keep draining stdout so that the server never blocks on a full pipe.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    log(f"hyperion dashboard at {match.group(0)} (pid {server.pid})")
    url = f"{match.group(0)}#/s/{urllib.request.quote(args.study, safe='')}"
    times, fail = loads(driver, server, url, HYPERION_PAINT, args.loads, "hyperion")
    rss = usage(server.pid)[0]
    procs.stop(server)
    return times, fail, rss


def optuna_dashboard(procs, driver, args, n):
    db = build_optuna_storage(n)
    with sqlite3.connect(db) as conn:
        study_id = conn.execute("SELECT study_id FROM studies WHERE study_name = 'dash'"
                                ).fetchone()[0]
    # The console script: the package has no __main__, so `python -m optuna_dashboard` fails.
    # Without gunicorn installed it serves with wsgiref threads, in this one process.
    port, server_log = free_port(), tempfile.TemporaryFile()
    server = procs.start([str(Path(sys.executable).parent / "optuna-dashboard"),
                          f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)],
                         stdout=server_log, stderr=server_log)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/meta", timeout=5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"optuna-dashboard did not start ({server.poll()})")
            time.sleep(0.1)
    log(f"optuna-dashboard at {base} (pid {server.pid}), {n} trials")
    times, fail = loads(driver, server, f"{base}/dashboard/studies/{study_id}", OPTUNA_PAINT,
                        args.loads, f"optuna-dashboard {n}")
    rss = usage(server.pid)[0]
    if fail and server.poll() is not None:
        server_log.seek(0)
        last = (server_log.read().decode(errors="replace").strip().splitlines() or [""])[-1]
        fail += f" (server exited with {server.returncode}: {last[:200]})"
    procs.stop(server)
    return times, fail, rss


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hyperion-bin", required=True)
    p.add_argument("--hyperion-db", required=True)
    p.add_argument("--study", default="dash")
    p.add_argument("--trials", type=int, required=True, help="trials in the Hyperion study")
    p.add_argument("--optuna-trials", help="sizes of the Optuna studies (10000,100000)")
    p.add_argument("--quick", action="store_true", help="optuna-dashboard at 10000 only")
    p.add_argument("--loads", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per load")
    args = p.parse_args()
    sizes = args.optuna_trials or ("10000" if args.quick else "10000,100000")

    def median(times):
        return round(statistics.median(times), 1) if times else None

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # so that the finally below runs then too
    procs, result, rows = Processes(), {}, []
    try:
        driver = Driver(procs, args.timeout)
        times, fail, rss = hyperion(procs, driver, args)
        result.update(hyperion_paint_ms=median(times), hyperion_rss_mb=round(rss, 1))
        rows.append(("hyperion", args.trials, times, fail, rss))
        for n in map(int, sizes.split(",")):
            times, fail, rss = optuna_dashboard(procs, driver, args, n)
            k = f"{n // 1000}k" if n % 1000 == 0 else str(n)
            result[f"optuna_dashboard_paint_ms_{k}"] = median(times)
            result[f"optuna_dashboard_rss_mb_{k}"] = round(rss, 1)
            result[f"optuna_dashboard_fail_{k}"] = fail
            rows.append(("optuna-dashboard", n, times, fail, rss))
    finally:
        procs.stop_all()

    log(f"\n{'dashboard':<18}{'trials':>8}{'median ms':>11}{'RSS MB':>9}  loads (ms)")
    for name, n, times, fail, rss in rows:
        m = median(times)
        shown = " ".join(f"{t:.0f}" for t in times) + (f"  failed: {fail}" if fail else "")
        log(f"{name:<18}{n:>8}{'-' if m is None else f'{m:.1f}':>11}{rss:>9.1f}  {shown}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
