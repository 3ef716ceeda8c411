"""A real training job for the pruning benchmark: a scikit-learn MLP on the digits dataset, one
epoch per `partial_fit`, validation log-loss after each.

As a Hyperion trial: `python mlp.py LR ALPHA HIDDEN` appends {"step", "val_loss"} lines to
$HYPERION_METRICS_FILE. The Optuna half of the suite imports `train`.
"""

import json
import os
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

EPOCHS = 27
CLASSES = np.arange(10)


def data():
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_val), y_train, y_val


def train(lr, alpha, hidden):
    """Yields (epoch, validation log-loss) for epochs 1..EPOCHS."""
    x_train, x_val, y_train, y_val = data()
    model = MLPClassifier(hidden_layer_sizes=(hidden,), learning_rate_init=lr, alpha=alpha,
                          batch_size=64, random_state=0)
    for epoch in range(1, EPOCHS + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(x_train, y_train, classes=CLASSES)
        yield epoch, log_loss(y_val, model.predict_proba(x_val), labels=CLASSES)


if __name__ == "__main__":
    lr, alpha, hidden = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    with open(os.environ["HYPERION_METRICS_FILE"], "a") as out:
        for epoch, loss in train(lr, alpha, hidden):
            out.write(json.dumps({"step": epoch, "val_loss": loss}) + "\n")
            out.flush()
