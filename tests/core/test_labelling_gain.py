"""A guard: suggest_next must keep beating labelling at random (the full measurement,
on SqueezeNet embeddings of two image sets, is benchmarks/labelling_bench.py)."""
import numpy as np
from sklearn.datasets import make_blobs

from orangecontrib.deepimage.labelling import fit_quick_model, suggest_next


def accuracy_after(X, y, strategy, seed, budget=20, batch=10):
    """Oracle labelling from zero labels; accuracy of the quick model on the rest."""
    labels = [None] * len(y)
    while sum(label is not None for label in labels) < budget:
        for i in suggest_next(X, labels, batch, strategy, seed=seed):
            labels[i] = int(y[i])
    rest = np.array([label is None for label in labels])
    return np.mean(np.array(fit_quick_model(X, labels).predict(X[rest])) == y[rest])


def test_suggest_next_beats_random_on_imbalanced_classes():
    sizes = [200, 150, 100, 60, 40, 30, 20, 15, 10, 10]   # rare classes: random misses them
    X, y = make_blobs(sizes, n_features=16, cluster_std=2.0, random_state=1)
    X = np.hstack([X, np.random.default_rng(1).normal(size=(len(X), 16))])
    auto = [accuracy_after(X, y, "auto", seed) for seed in range(5)]
    random = [accuracy_after(X, y, "random", seed) for seed in range(5)]
    assert np.mean(auto) >= np.mean(random) + 0.04, (auto, random)
    assert sum(a >= r for a, r in zip(auto, random)) >= 4, (auto, random)
