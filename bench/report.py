"""Sets Hyperion's measurements beside Optuna's: a table, then one JSON line of headline figures.

usage: report.py SUITE HYPERION.jsonl OPTUNA.jsonl
"""

import json
import sys


def load(path):
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"report: cannot read {path}: {e}")
    if not rows:
        sys.exit(f"report: {path} has no measurements")
    return rows


def sig(x):
    return f"{x:.3g}"


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def overhead(hyperion, optuna):
    h = {r["trials"]: r["per_s"] for r in hyperion}
    o = {r["trials"]: r["per_s"] for r in optuna}
    sizes = sorted(set(h) & set(o))
    if not sizes:
        sys.exit("report: no study size measured on both sides")
    table(["trials", "hyperion cycles/s", "optuna cycles/s", "ratio"],
          [[n, sig(h[n]), sig(o[n]), sig(h[n] / o[n])] for n in sizes])
    # Headline: the size where Hyperion's lead is smallest (the conservative figure).
    worst = min(sizes, key=lambda n: h[n] / o[n])
    per_size = {str(n): {"hyperion_per_s": h[n], "optuna_per_s": o[n], "ratio": h[n] / o[n]} for n in sizes}
    return {"suite": "overhead", "hyperion_per_s": h[worst], "optuna_per_s": o[worst],
            "ratio": h[worst] / o[worst], "per_size": per_size}


def store(hyperion, optuna):
    h1 = {r["trials"]: r["per_s"] for r in hyperion if "trials" in r and "per_s" in r}
    o1 = {r["trials"]: r["per_s"] for r in optuna if "trials" in r and "per_s" in r}
    h4 = next(r["per_s"] for r in hyperion if r.get("processes") == 4)
    o4 = next(r["per_s"] for r in optuna if r.get("processes") == 4)
    reads = {r["read"]: r for r in hyperion if "read" in r}
    print("ask+tell cycles per second on SQLite, by trials in the study")
    table(["trials", "hyperion", "optuna"],
          [[n, sig(h1[n]) if n in h1 else "-", sig(o1[n]) if n in o1 else "-"] for n in sorted(set(h1) | set(o1))])
    print()
    # Conservative: Hyperion's slowest size against Optuna's fastest (its smallest study).
    h, o = min(h1.values()), max(o1.values())
    table(["processes", "hyperion cycles/s", "optuna cycles/s", "ratio"],
          [[1, sig(h), sig(o), sig(h / o)], [4, sig(h4), sig(o4), sig(h4 / o4)]])
    print()
    flat = max(h1.values()) / min(h1.values())
    print(f"hyperion cost per cycle varies {flat:.2f}x from {min(h1)} to {max(h1)} trials")
    best, listing = reads["best"], reads["list"]
    print(f"read the best trial of {best['trials']} trials: {best['ms']:.3f} ms; "
          f"list all {listing['trials']}: {listing['ms']:.0f} ms")
    return {"suite": "store", "hyperion_per_s": h, "optuna_per_s": o, "ratio": h / o,
            "hyperion_per_s_4proc": h4, "optuna_per_s_4proc": o4, "ratio_4proc": h4 / o4,
            "best_ms_100k": best["ms"] if best["trials"] == 100_000 else None,
            "list_ms_100k": listing["ms"] if listing["trials"] == 100_000 else None,
            "read_trials": best["trials"]}


def launch(hyperion, optuna):
    bare = next(r["ms_per_trial"] for r in hyperion if r["impl"] == "bare")
    h = {r["concurrency"]: r for r in hyperion if r["impl"] == "hyperion"}
    o = {r["concurrency"]: r for r in optuna}
    print(f"bare spawn of the command: {bare:.2f} ms per trial")
    table(["max_concurrent", "hyperion trials/s", "optuna trials/s", "ratio", "hyperion overhead ms/trial"],
          [[c, sig(h[c]["per_s"]), sig(o[c]["per_s"]), sig(h[c]["per_s"] / o[c]["per_s"]),
            f'{h[c]["overhead_ms"]:.2f}'] for c in sorted(set(h) & set(o))])
    best = max(h, key=lambda c: h[c]["per_s"])
    return {"suite": "launch", "hyperion_per_s": h[best]["per_s"], "optuna_per_s": o[best]["per_s"],
            "overhead_ms": h[1]["overhead_ms"], "concurrency": best,
            "hyperion_per_s_1": h[1]["per_s"], "optuna_per_s_1": o[1]["per_s"], "bare_ms": bare}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def quartiles(xs):
    xs = sorted(xs)
    q = lambda f: xs[min(len(xs) - 1, int(round(f * (len(xs) - 1))))]
    return q(0.25), q(0.75)


def tpe(hyperion, optuna):
    runs = {}
    for r in hyperion + optuna:
        if "problem" in r:
            runs.setdefault((r["problem"], r["sampler"]), []).append(r)
    problems = list(dict.fromkeys(p for p, _ in runs))
    budgets = [b for b in (50, 100, 200) if any(r.get(f"regret_{b}") is not None for rs in runs.values() for r in rs)]
    samplers = ["tpe", "tpe_independent", "optuna_tpe", "optuna_tpe_independent", "random", "sobol"]
    wins = ties = losses = 0
    verdicts = []
    for problem in problems:
        print(f"{problem}: median regret (interquartile range) over {len(runs[(problem, 'tpe')])} seeds")
        rows = []
        med = {}
        for sampler in samplers:
            rs = runs.get((problem, sampler))
            if not rs:
                continue
            cells = []
            for b in budgets:
                xs = [r[f"regret_{b}"] for r in rs if r.get(f"regret_{b}") is not None]
                if not xs:
                    cells.append("-")
                    continue
                lo, hi = quartiles(xs)
                m = median(xs)
                med[(sampler, b)] = m
                cells.append(f"{sig(m)} ({sig(lo)}-{sig(hi)})")
            rows.append([sampler] + cells)
        table(["sampler"] + [f"@{b}" for b in budgets], rows)
        # The largest budget both sides ran.
        both = [b for b in budgets if ("tpe", b) in med and ("optuna_tpe", b) in med]
        if not both:
            print()
            continue
        b = max(both)
        h = med[("tpe", b)]
        o = min(med[("optuna_tpe", b)], med[("optuna_tpe_independent", b)])
        if abs(h - o) <= 1e-12 * max(1.0, abs(o)):
            ties += 1
            verdict = "tie"
        elif h < o:
            wins += 1
            verdict = "win"
        else:
            losses += 1
            verdict = "loss"
        verdicts.append(f"{problem} @{b}: hyperion tpe {sig(h)} vs the better optuna tpe {sig(o)} -> {verdict}")
        print()
    print("\n".join(verdicts))
    print()
    hc = {r["history"]: r["ms_per_suggest"] for r in hyperion if "history" in r}
    oc = {r["history"]: r["ms_per_suggest"] for r in optuna if "history" in r}
    table(["history", "hyperion ms/suggest", "optuna ms/suggest", "speedup"],
          [[n, sig(hc[n]), sig(oc[n]) if n in oc else "-", sig(oc[n] / hc[n]) if n in oc else "-"] for n in sorted(hc)])
    return {"suite": "tpe", "wins": wins, "ties": ties, "losses": losses,
            "speedup_at_1000": oc[1000] / hc[1000] if 1000 in oc and 1000 in hc else None,
            "ms_per_suggest_at_10000": hc.get(10000)}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    suite, hyperion, optuna = sys.argv[1], load(sys.argv[2]), load(sys.argv[3])
    reports = {"overhead": overhead, "store": store, "launch": launch, "tpe": tpe}
    if suite not in reports:
        sys.exit(f"report: unknown suite {suite}")
    print()
    headline = reports[suite](hyperion, optuna)
    print()
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
