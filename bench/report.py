"""Sets Hyperion's measurements beside Optuna's: a table, then one JSON line of headline figures.

usage: report.py SUITE HYPERION.jsonl OPTUNA.jsonl
"""

import json
import math
import random
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
    nxt = next(r for r in hyperion if r.get("next_start"))
    files = next(r["ms_per_trial"] for r in hyperion if r["impl"] == "files")
    h = {r["concurrency"]: r for r in hyperion
         if r["impl"] == "hyperion" and "concurrency" in r and r["fs"] == "disk"}
    tmpfs = next((r for r in hyperion if r.get("fs") == "tmpfs"), None)
    o = {r["concurrency"]: r for r in optuna}
    print(f"bare spawn of the command: {bare:.2f} ms per trial; "
          f"creating a trial directory's entries: {files:.2f} ms")
    table(["max_concurrent", "hyperion trials/s", "optuna trials/s", "ratio", "hyperion overhead ms/trial"],
          [[c, sig(h[c]["per_s"]), sig(o[c]["per_s"]), sig(h[c]["per_s"] / o[c]["per_s"]),
            f'{h[c]["overhead_ms"]:.2f}'] for c in sorted(set(h) & set(o))])
    print(f'from one trial\'s exit to the next one\'s start: p50 {nxt["next_start_p50_ms"]:.3f} ms, '
          f'p99 {nxt["next_start_p99_ms"]:.3f} ms')
    if tmpfs:
        print(f'hyperion overhead at max_concurrent 1 with the store and trials on tmpfs: '
              f'{tmpfs["overhead_ms"]:.2f} ms/trial')
    best = max(h, key=lambda c: h[c]["per_s"])
    return {"suite": "launch", "hyperion_per_s": h[best]["per_s"], "optuna_per_s": o[best]["per_s"],
            "overhead_ms": h[1]["overhead_ms"], "concurrency": best,
            "hyperion_per_s_1": h[1]["per_s"], "optuna_per_s_1": o[1]["per_s"], "bare_ms": bare,
            "trial_files_ms": files, "overhead_ms_tmpfs": tmpfs["overhead_ms"] if tmpfs else None,
            "next_start_p50_ms": nxt["next_start_p50_ms"], "next_start_p99_ms": nxt["next_start_p99_ms"]}


def postgres(hyperion, optuna):
    h = {r["processes"]: r for r in hyperion if "processes" in r}
    o = {r["processes"]: r for r in optuna if "processes" in r}
    big = next(r for r in hyperion if "big" in r)
    print("ask+tell cycles per second on one PostgreSQL study shared by P processes")
    table(["processes", "hyperion", "optuna", "ratio", "hyperion errors", "optuna errors",
           "hyperion duplicates", "optuna duplicates"],
          [[p, sig(h[p]["per_s"]), sig(o[p]["per_s"]), sig(h[p]["per_s"] / o[p]["per_s"]),
            h[p]["errors"], o[p]["errors"], h[p]["duplicates"], o[p]["duplicates"]]
           for p in sorted(set(h) & set(o))])
    print()
    print(f'a study of {big["big"]:,} trials (built in {big["build_s"]:.0f} s): '
          f'hyperion status {big["status_ms"]:.0f} ms, first page of trials {big["page_ms"]:.0f} ms, '
          f'best trial {big["best_ms"]:.3f} ms; ask+tell {sig(big["per_s_at_size"])}/s there '
          f'against {sig(big["per_s_at_1k"])}/s on a study of 1,000 trials')
    errors = sum(r["errors"] for r in h.values())
    duplicates = sum(r["duplicates"] for r in h.values())
    return {"suite": "postgres", "ratio_8proc": h[8]["per_s"] / o[8]["per_s"],
            "hyperion_per_s_8proc": h[8]["per_s"], "optuna_per_s_8proc": o[8]["per_s"],
            "hyperion_per_s_32proc": h[32]["per_s"], "optuna_per_s_32proc": o[32]["per_s"],
            "ratio_1proc": h[1]["per_s"] / o[1]["per_s"],
            "duplicates": duplicates, "errors": errors,
            "optuna_errors": sum(r["errors"] for r in o.values()),
            "optuna_duplicates": sum(r["duplicates"] for r in o.values()),
            "big_trials": big["big"], "status_ms_1m": big["status_ms"], "best_ms_1m": big["best_ms"],
            "page_ms_1m": big["page_ms"],
            "per_s_at_1m": big["per_s_at_size"], "per_s_at_1k": big["per_s_at_1k"],
            "flat_1k_to_1m": big["per_s_at_size"] / big["per_s_at_1k"]}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def quartiles(xs):
    xs = sorted(xs)
    q = lambda f: xs[min(len(xs) - 1, int(round(f * (len(xs) - 1))))]
    return q(0.25), q(0.75)


def compare(h, o):
    """The verdict on Hyperion's median regret `h` against the peer's `o`."""
    if abs(h - o) <= 1e-12 * max(1.0, abs(o)):
        return "tie"
    return "win" if h < o else "loss"


def medians(runs, budgets):
    """Per (sampler, budget): the median regret over seeds, and the table cell with its
    interquartile range."""
    med, cells = {}, {}
    for sampler, rs in runs.items():
        for b in budgets:
            xs = [r[f"regret_{b}"] for r in rs if r.get(f"regret_{b}") is not None]
            if xs:
                lo, hi = quartiles(xs)
                med[(sampler, b)] = median(xs)
                cells[(sampler, b)] = f"{sig(med[(sampler, b)])} ({sig(lo)}-{sig(hi)})"
    return med, cells


def samplers(hyperion, optuna):
    pairs = [("cmaes", "optuna_cmaes")]
    budgets = (100, 300, 1000)
    runs = {}
    for r in hyperion + optuna:
        runs.setdefault(r["problem"], {}).setdefault(r["sampler"], []).append(r)
    headline = {"suite": "samplers"}
    for ours, theirs in pairs:
        wins = ties = losses = 0
        verdicts = []
        for problem, by_sampler in runs.items():
            if ours not in by_sampler or theirs not in by_sampler:
                continue
            med, cells = medians({s: by_sampler[s] for s in (ours, theirs)}, budgets)
            print(f"{problem}: median regret (interquartile range) over {len(by_sampler[ours])} seeds")
            table(["sampler"] + [f"@{b}" for b in budgets],
                  [[s] + [cells.get((s, b), "-") for b in budgets] for s in (ours, theirs)])
            print()
            b = max(b for b in budgets if (ours, b) in med and (theirs, b) in med)
            verdict = compare(med[(ours, b)], med[(theirs, b)])
            wins, ties, losses = wins + (verdict == "win"), ties + (verdict == "tie"), losses + (verdict == "loss")
            verdicts.append(f"{problem} @{b}: hyperion {ours} {sig(med[(ours, b)])} vs optuna "
                            f"{sig(med[(theirs, b)])} -> {verdict}")
        print("\n".join(verdicts))
        ms = lambda s: median_ms(runs, s)
        speedup = ms(theirs) / ms(ours)
        print(f"{ours}: median ms per trial {sig(ms(ours))} against optuna's {sig(ms(theirs))}: "
              f"{sig(speedup)}x")
        print()
        headline.update({f"{ours}_wins": wins, f"{ours}_ties": ties, f"{ours}_losses": losses,
                         f"{ours}_speedup": speedup})
    headline.update(nsga2(runs))
    # Not built yet: their figures stay null rather than absent.
    for key in ("gp_wins", "gp_losses", "gp_speedup_300", "gp_ms_500", "auto_no_worse"):
        headline.setdefault(key, None)
    return headline


def median_ms(runs, sampler):
    """The median time of a trial over every run of `sampler` (runs: problem -> sampler -> runs)."""
    return median([r["ms_per_trial"] for rs in runs.values() for r in rs.get(sampler, [])])


def hypervolume(front, reference=(1.1, 1.1)):
    """The area a two-objective front (both minimized) dominates up to `reference`."""
    area, ceiling = 0.0, reference[1]
    for f1, f2 in sorted(p for p in front if p[0] < reference[0] and p[1] < reference[1]):
        if f2 < ceiling:
            area += (reference[0] - f1) * (ceiling - f2)
            ceiling = f2
    return area


def nsga2(runs):
    """NSGA-II against Optuna's on ZDT1-3: the median hypervolume (to (1.1, 1.1)) of the final
    fronts over seeds, their ratio per problem, and the time of a trial."""
    ratios, rows = [], []
    for problem in ("zdt1", "zdt2", "zdt3"):
        by = runs.get(problem, {})
        if "nsga2" not in by or "optuna_nsga2" not in by:
            continue
        hv = {s: median([hypervolume(r["front"]) for r in by[s]]) for s in ("nsga2", "optuna_nsga2")}
        ratio = hv["nsga2"] / hv["optuna_nsga2"] if hv["optuna_nsga2"] > 0 else None
        ratios.append(ratio)
        rows.append([problem, len(by["nsga2"]), by["nsga2"][0]["trials"], sig(hv["nsga2"]),
                     sig(hv["optuna_nsga2"]), sig(ratio) if ratio is not None else "-"])
    if not rows:
        return {"nsga2_hv_ratio_min": None, "nsga2_speedup": None}
    print("NSGA-II on ZDT: median hypervolume of the final front, reference point (1.1, 1.1)")
    table(["problem", "seeds", "trials", "hyperion", "optuna", "ratio"], rows)
    ms = lambda s: median_ms(runs, s)
    speedup = ms("optuna_nsga2") / ms("nsga2")
    print(f"nsga2: median ms per trial {sig(ms('nsga2'))} against optuna's {sig(ms('optuna_nsga2'))}: "
          f"{sig(speedup)}x")
    print()
    known = [r for r in ratios if r is not None]
    return {"nsga2_hv_ratio_min": min(known) if len(known) == len(ratios) else None,
            "nsga2_speedup": speedup}


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
        ran = [s for s in samplers if runs.get((problem, s))]
        med, cells = medians({s: runs[(problem, s)] for s in ran}, budgets)
        table(["sampler"] + [f"@{b}" for b in budgets],
              [[s] + [cells.get((s, b), "-") for b in budgets] for s in ran])
        # The largest budget both sides ran.
        both = [b for b in budgets if ("tpe", b) in med and ("optuna_tpe", b) in med]
        if not both:
            print()
            continue
        b = max(both)
        h = med[("tpe", b)]
        o = min(med[("optuna_tpe", b)], med[("optuna_tpe_independent", b)])
        verdict = compare(h, o)
        wins, ties, losses = wins + (verdict == "win"), ties + (verdict == "tie"), losses + (verdict == "loss")
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


def pruning(hyperion, optuna):
    inf = float("inf")
    runs, mlp = {}, []
    for r in hyperion + optuna:
        if r.get("problem") == "mlp":
            mlp.append(r)
        elif "regret" in r:
            curve = [inf if x is None else x for x in r["regret"]]
            runs.setdefault((r["problem"], r["strategy"]), []).append((r["epochs"], curve))
    problems = list(dict.fromkeys(p for p, _ in runs))
    strategies = ["none", "median", "asha", "hyperband", "pbt", "optuna_none",
                  "optuna_median", "optuna_sh", "optuna_hyperband"]
    fractions, ratios, finals, thirds = [], [], [], []
    for problem in problems:
        seeds = len(runs[(problem, "none")])
        grid = len(runs[(problem, "none")][0][1])
        at = {"E/9": grid // 9 - 1, "E/3": grid // 3 - 1, "E": grid - 1}
        print(f"{problem}: regret against epochs spent, median (interquartile range) over {seeds} seeds; "
              f"E = the epochs no stopping spends")
        med = {s: [median([c[k] for _, c in runs[(problem, s)]]) for k in range(grid)]
               for s in strategies if (problem, s) in runs}
        target = med["none"][-1]
        rows = []
        for s in med:
            cells = []
            for label, k in at.items():
                xs = [c[k] for _, c in runs[(problem, s)]]
                lo, hi = quartiles(xs)
                cells.append(f"{sig(median(xs))} ({sig(lo)}-{sig(hi)})")
            reach = next((k for k in range(grid) if med[s][k] <= target), None)
            epochs = median([e for e, _ in runs[(problem, s)]])
            rows.append([s] + cells + [sig(epochs), "-" if reach is None else f"{(reach + 1) / grid:.3f}"])
        table(["strategy"] + [f"@{label}" for label in at] + ["epochs used", "reaches none@E at"], rows)
        fraction = next(((k + 1) / grid for k in range(grid) if med["asha"][k] <= target), None)
        fractions.append(fraction if fraction is not None else inf)
        ratio = med["optuna_sh"][-1] / med["asha"][-1] if med["asha"][-1] > 0 else inf
        ratios.append(ratio)
        sh_final = [c[-1] for _, c in runs[(problem, "optuna_sh")]]
        asha_final = [c[-1] for _, c in runs[(problem, "asha")]]
        finals.append((sh_final, asha_final))
        thirds.append(med["optuna_sh"][grid // 3 - 1] / med["asha"][grid // 3 - 1])
        print(f"{problem}: ASHA reaches no stopping's final regret {sig(target)} with "
              f"{'more than all' if fraction is None else f'{fraction:.3f}'} of its epochs; "
              f"Optuna SH / ASHA regret at E = {sig(ratio)}")
        print()
    if mlp:
        print("scikit-learn MLP on digits (one seed, a sanity check): best validation log-loss")
        table(["impl", "strategy", "trials", "pruned", "epochs", "best val_loss", "seconds"],
              [[r["impl"], r["strategy"], r["trials"], r["pruned"], r["epochs"], sig(r["best"]), sig(r["seconds"])]
               for r in mlp])
    # The epochs fraction of the worst problem; the regret ratio as a geometric mean over the
    # problems (one problem's ratio at one budget is mostly noise: the two follow one rule).
    mean_ratio = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    # How much of that is noise: resample the seeds of both sides (bootstrap, 2,000 draws).
    rng = random.Random(0)
    draws = []
    for _ in range(2000):
        logs = []
        for sh, asha in finals:
            m_sh = median([rng.choice(sh) for _ in sh])
            m_asha = median([rng.choice(asha) for _ in asha])
            logs.append(math.log(m_sh / m_asha) if m_sh > 0 and m_asha > 0 else 0.0)
        draws.append(math.exp(sum(logs) / len(logs)))
    draws.sort()
    low, high = draws[len(draws) // 40], draws[len(draws) - len(draws) // 40 - 1]
    print(f"Optuna SH / ASHA regret at E, geometric mean over problems: {sig(mean_ratio)} "
          f"(95% bootstrap interval over seeds {sig(low)}-{sig(high)}); at E/3: "
          f"{sig(math.exp(sum(math.log(r) for r in thirds) / len(thirds)))}")
    return {"suite": "pruning", "epochs_fraction_asha": max(fractions), "asha_vs_optuna_sh": mean_ratio,
            "asha_vs_optuna_sh_interval": [low, high],
            "per_problem": {p: {"epochs_fraction_asha": f, "asha_vs_optuna_sh": r}
                            for p, f, r in zip(problems, fractions, ratios)}}


def dashboard(hyperion, paint):
    """The server's figures (hyperion-bench dashboard) and the first paints (bench/dashboard.py):
    Hyperion at its study's size, optuna-dashboard at 10⁴ (and 10⁵ unless --quick)."""
    h, p = hyperion[-1], paint[-1]
    n = h["trials"]
    size = "100k" if n >= 100_000 else "10k"
    goals = [("first paint", p.get("hyperion_paint_ms"), "ms", 1500),
             ("API p95", h["api_p95_ms"], "ms", 100),
             ("server RSS", h["rss_mb"], "MB", 200),
             ("tell → SSE event", h["sse_ms"], "ms", 100)]
    rows = [[name, "–" if v is None else sig(v), unit, f"< {goal}",
             "yes" if v is not None and v < goal else "NO"] for name, v, unit, goal in goals]
    print(f"hyperion dashboard, {n} trials")
    table(["figure", "value", "unit", "goal", "met"], rows)
    print()
    print("per request, p95 ms:")
    table(["request", "p95 ms"], [[k[:-7], sig(v)] for k, v in h.items() if k.endswith("_p95_ms")])
    print()
    rows = []
    for k in ["10k", "100k"]:
        if f"optuna_dashboard_paint_ms_{k}" not in p and f"optuna_dashboard_fail_{k}" not in p:
            continue
        od = p.get(f"optuna_dashboard_paint_ms_{k}")
        fail = p.get(f"optuna_dashboard_fail_{k}")
        rss = p.get(f"optuna_dashboard_rss_mb_{k}")
        rows.append([k, "–" if od is None else sig(od), fail or "", "–" if rss is None else sig(rss)])
    print(f"optuna-dashboard 0.21 (Hyperion at {size}: paint {p.get('hyperion_paint_ms')} ms, RSS {p.get('hyperion_rss_mb')} MB)")
    table(["trials", "paint ms", "failure", "RSS MB"], rows)
    headline = {"suite": "dashboard", "trials": n, f"paint_ms_{size}": p.get("hyperion_paint_ms"),
                "api_p95_ms": h["api_p95_ms"], "rss_mb": h["rss_mb"], "sse_ms": h["sse_ms"],
                "hyperion_paint_rss_mb": p.get("hyperion_rss_mb")}
    for key, value in p.items():
        if key.startswith("optuna_dashboard_"):
            headline[key] = value
    return headline


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    suite, hyperion, optuna = sys.argv[1], load(sys.argv[2]), load(sys.argv[3])
    reports = {"overhead": overhead, "store": store, "launch": launch, "tpe": tpe, "pruning": pruning,
               "postgres": postgres, "samplers": samplers, "dashboard": dashboard}
    if suite not in reports:
        sys.exit(f"report: unknown suite {suite}")
    print()
    headline = reports[suite](hyperion, optuna)
    print()
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
