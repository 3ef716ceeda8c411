# The golden figures of tests/it.rs `importance_matches_optuna`: Optuna 5.0 PED-ANOVA on the same
# 300 trials (run with a Python that has optuna 5.0, e.g. bench/.venv/bin/python).
import math, optuna, warnings
warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)
from optuna.distributions import FloatDistribution as F, IntDistribution as I, CategoricalDistribution as C
def frac(v): return v - math.floor(v)
dists = {"x": F(-5, 5), "lr": F(1e-3, 1.0, log=True), "k": I(0, 10), "c": C(["a", "b", "c"]), "noise": F(0, 1)}
def point(i):
    x = -5 + 10 * frac(i * 0.6180339887)
    lr = math.exp(math.log(1e-3) + math.log(1000) * frac(i * 0.4142135623))
    k = (i * 7) % 11
    c = ["a", "b", "c"][(i * i + i // 3) % 3]
    noise = frac(i * 0.7320508075)
    value = x * x + 0.3 * (math.log10(lr) + 2) ** 2 + (2.0 if c == "b" else 0.0) + 0.05 * k
    return dict(x=x, lr=lr, k=k, c=c, noise=noise), value
for direction in ["minimize", "maximize"]:
    study = optuna.create_study(direction=direction)
    for i in range(300):
        p, v = point(i)
        study.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=v))
    target = (lambda t: t.value) if direction == "minimize" else (lambda t: -t.value)
    imp = optuna.importance.get_param_importances(study, target=target)
    print(direction, {k: round(v, 9) for k, v in imp.items()})
