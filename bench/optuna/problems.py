"""The standard test functions of the tpe and pruning suites, as in crates/hyperion-bench/src/tpe.rs
(each returns the regret: 0 at the optimum)."""

import math

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

PI = math.pi


def box(d, lo, hi):
    return {f"x{i}": FloatDistribution(lo, hi) for i in range(d)}


def xs(p, d):
    return [p[f"x{i}"] for i in range(d)]


def branin(p):
    x = xs(p, 2)
    b, c, t = 5.1 / (4 * PI * PI), 5 / PI, 1 / (8 * PI)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * math.cos(x[0]) + 10 - 0.397887357729738


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(p):
    x = xs(p, 6)
    s = sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))
    return 3.322368011391339 - s


def rosenbrock(p):
    x = xs(p, 10)
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


def ackley(p):
    x = xs(p, 10)
    n = len(x)
    s1 = sum(v * v for v in x) / n
    s2 = sum(math.cos(2 * PI * v) for v in x) / n
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def levy(p):
    w = [1 + (v - 1) / 4 for v in xs(p, 10)]
    mid = sum((w[i] - 1) ** 2 * (1 + 10 * math.sin(PI * w[i] + 1) ** 2) for i in range(9))
    return math.sin(PI * w[0]) ** 2 + mid + (w[9] - 1) ** 2 * (1 + math.sin(2 * PI * w[9]) ** 2)


def styblinski(p):
    return sum(v ** 4 - 16 * v * v + 5 * v for v in xs(p, 10)) / 2 + 39.16616570377142 * 10


def mixed(p):
    c = {"a": 1.0, "b": 0.0, "c": 2.0, "d": 3.0}[p["c"]]
    return (p["x"] - 1.5) ** 2 + 0.5 * (p["n"] - 7) ** 2 + c + (math.log10(p["lr"]) + 3) ** 2


PROBLEMS = [
    ("branin", {"x0": FloatDistribution(-5, 10), "x1": FloatDistribution(0, 15)}, branin),
    ("hartmann6", box(6, 0, 1), hartmann6),
    ("rosenbrock10", box(10, -5, 10), rosenbrock),
    ("ackley10", box(10, -32.768, 32.768), ackley),
    ("levy10", box(10, -10, 10), levy),
    ("styblinski_tang10", box(10, -5, 5), styblinski),
    ("mixed", {"x": FloatDistribution(-5, 5), "n": IntDistribution(1, 10),
               "c": CategoricalDistribution(["a", "b", "c", "d"]), "lr": FloatDistribution(1e-5, 1, log=True)}, mixed),
]
