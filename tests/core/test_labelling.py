"""The labelling loop's engine: suggestions, label issues, the quick model, bad input."""
import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from orangecontrib.deepimage.labelling import (STRATEGIES, AccuracyEstimate, LabellingError,
                                               QuickModel, estimate_accuracy,
                                               fit_quick_model, label_issue_scores,
                                               label_issues, suggest_next,
                                               summarize_labels)


@pytest.fixture(scope="module")
def blobs():
    """Eight well separated clusters of very unequal size (200 down to 8 rows)."""
    X, y = make_blobs([200, 120, 80, 50, 30, 20, 12, 8], n_features=24, cluster_std=1.0,
                      center_box=(-12, 12), random_state=3)
    return X, y


def labelled(y, rows):
    labels = [None] * len(y)
    for i in rows:
        labels[i] = f"c{y[i]}"
    return labels


def test_first_diverse_picks_cover_every_cluster(blobs):
    X, y = blobs
    for strategy in ("auto", "diverse"):
        picks = suggest_next(X, [None] * len(y), 8, strategy)
        assert sorted(y[picks]) == list(range(8)), strategy
    random_picks = suggest_next(X, [None] * len(y), 8, "random")
    assert len(set(y[random_picks])) < 8     # what diversity is for


def test_diverse_picks_go_to_clusters_without_labels(blobs):
    X, y = blobs
    first = [int(np.flatnonzero(y == c)[0]) for c in (0, 1, 2)]
    picks = suggest_next(X, labelled(y, first), 5, "diverse")
    assert sorted(y[picks]) == [3, 4, 5, 6, 7]


def test_uncertain_picks_are_near_the_boundary():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] > 0).astype(int)
    labels = labelled(y, rng.choice(600, 40, replace=False))
    picks = suggest_next(X, labels, 10, "uncertain")
    unlabelled = [i for i, label in enumerate(labels) if label is None]
    # random picks would give about 1 x; the margin picks stay near the boundary (0.26 x
    # with scikit-learn 1.3, 0.2 x with newer ones), diversity spreading them along it
    assert np.median(np.abs(X[picks, 0])) < 0.4 * np.median(np.abs(X[unlabelled, 0]))
    assert len(set(picks)) == 10 and all(labels[i] is None for i in picks)


def test_auto_switches_to_uncertainty_once_labels_suffice():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 4))
    y = (X[:, 0] > 0).astype(int)
    labels = labelled(y, rng.choice(500, 60, replace=False))
    assert suggest_next(X, labels, 5, "auto", seed=4) == suggest_next(X, labels, 5,
                                                                       "uncertain", seed=4)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_for_a_seed_and_never_labelled_rows(blobs, strategy):
    X, y = blobs
    labels = labelled(y, range(0, 520, 13))
    first = suggest_next(X, labels, 12, strategy, seed=7)
    assert first == suggest_next(X, labels, 12, strategy, seed=7)
    assert len(first) == len(set(first)) == 12
    assert all(labels[i] is None for i in first)
    assert all(isinstance(i, int) for i in first)


def test_random_depends_on_the_seed(blobs):
    X, y = blobs
    assert suggest_next(X, [None] * len(y), 10, "random", seed=1) != \
        suggest_next(X, [None] * len(y), 10, "random", seed=2)


def test_label_issues_find_flipped_labels(blobs):
    X, y = blobs
    rng = np.random.default_rng(5)
    flipped = rng.choice(len(y), 10, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + 1 + rng.integers(0, 7, 10)) % 8
    labels = [f"c{v}" for v in noisy]
    issues = label_issues(X, labels)
    assert set(issues[:10]) == set(flipped.tolist())
    scores = label_issue_scores(X, labels)
    assert scores.shape == (len(y),)
    assert np.all(scores[flipped] < 0.5) and np.median(np.delete(scores, flipped)) > 0.9
    assert label_issues(X, [f"c{v}" for v in y]) == []
    # the refit's one cross-validation gives both, the same as the two calls
    from orangecontrib.deepimage.core.labelling.issues import issues_and_scores
    both, both_scores = issues_and_scores(X, labels, with_scores=True)
    assert both == issues and np.array_equal(both_scores, scores, equal_nan=True)
    assert issues_and_scores(X, labels)[1] is None
    assert issues_and_scores(X, [f"c{v}" for v in y], with_scores=True) == ([], None)


def test_quick_model_predicts_and_its_accuracy_is_estimated(blobs):
    X, y = blobs
    labels = labelled(y, range(0, 520, 5))
    model = fit_quick_model(X, labels)
    assert isinstance(model, QuickModel)
    assert model.classes == [f"c{c}" for c in range(8)]
    proba = model.predict_proba(X)
    assert proba.shape == (520, 8) and np.allclose(proba.sum(axis=1), 1)
    assert np.mean(np.array(model.predict(X)) == np.array([f"c{v}" for v in y])) > 0.97
    estimate = estimate_accuracy(X, labels)
    assert isinstance(estimate, AccuracyEstimate)
    assert estimate.mean > 0.9 and 0 <= estimate.std < 0.1
    assert estimate.low < estimate.mean <= estimate.high <= 1
    assert (estimate.n_labels, estimate.n_classes, estimate.n_tested) == (104, 8, 104)
    assert estimate.n_folds == 10
    assert "estimated accuracy" in str(estimate) and "95 %" in str(estimate)


def test_estimate_corrects_for_labels_picked_where_the_model_is_unsure():
    """Suggested labels are the hard cases: cross-validation on them alone says the
    model is worse than it is on the rows not labelled; the estimate weighs them by
    the model's confidence on those rows."""
    X, y = make_blobs(1500, n_features=10, centers=6, cluster_std=3.0, random_state=0)
    labels = [None] * len(y)
    for step in range(8):
        for i in suggest_next(X, labels, 10, seed=step):
            labels[i] = int(y[i])
    rest = np.array([label is None for label in labels])
    true = np.mean(np.array(fit_quick_model(X, labels).predict(X[rest])) == y[rest])
    estimate = estimate_accuracy(X, labels)
    assert estimate.cross_validated < true - 0.05
    assert abs(estimate.mean - true) < abs(estimate.cross_validated - true) / 2
    assert estimate.low <= true <= estimate.high


def test_accuracy_estimate_is_honest_on_noise():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 10))
    labels = [str(v) for v in rng.integers(0, 3, 300)]
    estimate = estimate_accuracy(X, labels)
    assert 0.2 < estimate.mean < 0.5


def test_nan_rows_are_never_suggested_and_said_so(blobs):
    X, y = blobs
    X = X.copy()
    X[::3] = np.nan
    labels = labelled(y, [1, 2])
    labels[3] = "c9"                 # a label on a NaN row: kept, not learnt from
    picks = suggest_next(X, labels, 400, "diverse")
    assert all(i % 3 for i in picks)
    assert len(picks) == sum(1 for i in range(520) if i % 3 and labels[i] is None)
    summary = summarize_labels(X, labels)
    assert summary.invalid_rows == list(range(0, 520, 3))
    assert any("never suggested" in note for note in summary.notes)
    model = fit_quick_model(X, labels)
    assert np.isnan(model.predict_proba(X[:1])).all() and model.predict(X[:1]) == [None]


def test_a_class_with_one_image(blobs):
    X, y = blobs
    labels = labelled(y, [i for c in range(4) for i in np.flatnonzero(y == c)[:5]])
    labels[450] = "lonely"
    assert "lonely" in fit_quick_model(X, labels).classes
    assert 450 not in label_issues(X, labels)
    assert math.isnan(label_issue_scores(X, labels)[450])
    estimate = estimate_accuracy(X, labels)
    # every held-out label right: (20 + 1) / (20 + 2), not a certainty
    assert estimate.mean == pytest.approx(21 / 22)
    assert (estimate.n_labels, estimate.n_tested) == (21, 20)
    assert any("one image: lonely" in note for note in summarize_labels(X, labels).notes)
    assert len(suggest_next(X, labels, 5)) == 5


def test_a_single_class_and_no_labels(blobs):
    X, y = blobs
    one = [None] * len(y)
    one[0] = one[1] = "cat"
    for labels in (one, [None] * len(y)):
        assert len(suggest_next(X, labels, 4, "uncertain")) == 4   # falls back to diverse
        assert label_issues(X, labels) == []
        estimate = estimate_accuracy(X, labels)
        assert estimate.mean is None and estimate.std is None and estimate.reason
        assert "cannot be estimated" in str(estimate)
    model = fit_quick_model(X, one)
    assert model.classes == ["cat"] and model.predict(X[:3]) == ["cat"] * 3
    with pytest.raises(LabellingError, match="label some images first"):
        fit_quick_model(X, [None] * len(y))


def test_duplicate_images_are_not_suggested_twice(blobs):
    X, y = blobs
    doubled = np.vstack([X, X])
    picks = suggest_next(doubled, [None] * len(doubled), 16, "diverse")
    assert len({i % len(X) for i in picks}) == 16
    labels = labelled(np.concatenate([y, y]), range(0, 1040, 9))
    picks = suggest_next(doubled, labels, 10, "uncertain")
    assert len({i % len(X) for i in picks}) == 10


def test_n_larger_than_the_unlabelled_rows(blobs):
    X, y = blobs
    labels = labelled(y, range(10, 520))
    for strategy in STRATEGIES:
        assert sorted(suggest_next(X, labels, 50, strategy)) == list(range(10))
        assert suggest_next(X, labels, 0, strategy) == []
    assert suggest_next(X, labelled(y, range(520)), 5) == []
    assert suggest_next(np.zeros((0, 4)), [], 5) == []


def test_labels_that_are_nan_or_empty_count_as_unlabelled(blobs):
    X, y = blobs
    labels = [float("nan")] * len(y)
    labels[0], labels[1] = "", "c0"
    assert summarize_labels(X, labels).n_labelled == 1
    assert 1 not in suggest_next(X, labels, 519)


@pytest.mark.parametrize("call, message", [
    (lambda X: suggest_next(X, [None] * 3, 2), "3 labels for 520 rows"),
    (lambda X: suggest_next(X, [None] * 520, 2, "clever"), "unknown strategy"),
    (lambda X: suggest_next(X, [None] * 520, -1), "n must be"),
    (lambda X: suggest_next(X, [None] * 520, 2.5), "n must be"),
    (lambda X: suggest_next(X[0], [None] * 24, 2), "2-D"),
    (lambda X: label_issues(X, [[1]] * 520), "hashable"),
    (lambda X: fit_quick_model(X, ["a", "b"] * 260).predict_proba(X[:, :5]),
     "24-d embeddings, these have 5"),
    (lambda X: estimate_accuracy([["x"]], ["a"]), "numbers"),
])
def test_invalid_calls_raise_labelling_error(blobs, call, message):
    with pytest.raises(LabellingError, match=message):
        call(blobs[0])


def test_no_estimate_until_two_classes_have_two_labels(blobs):
    X, y = blobs
    labels = labelled(y, [int(np.flatnonzero(y == c)[0]) for c in range(8)])
    labels[int(np.flatnonzero(y == 0)[1])] = "c0"
    estimate = estimate_accuracy(X, labels)
    assert estimate.mean is None and "too few labels" in estimate.reason
    for c in range(1, 5):  # ten labels in classes with two or more: enough
        labels[int(np.flatnonzero(y == c)[1])] = f"c{c}"
    estimate = estimate_accuracy(X, labels)
    assert estimate.n_tested == 10 and estimate.n_labels == 13
    assert estimate.low < estimate.mean < estimate.high


def test_describe_label_issues_names_the_likely_class(blobs):
    from orangecontrib.deepimage.labelling import describe_label_issues
    X, y = blobs
    labels = [f"c{v}" for v in y]
    row = int(np.flatnonzero(y == 2)[0])
    labels[row] = "c5"
    issue = describe_label_issues(X, labels)[0]
    assert (issue.row, issue.label, issue.likely) == (row, "c5", "c2")
    assert issue.label_probability < 0.1 < 0.5 < issue.likely_probability


def test_the_engine_imports_no_gui_no_orange_and_no_torch():
    from fresh_python import run_python
    proc = run_python("import sys, orangecontrib.deepimage.labelling\n"
                      "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                      "('torch', 'Orange', 'AnyQt', 'PyQt5', 'PyQt6', 'orangewidget')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_quick_model_pickles_and_deep_copies(blobs):
    import copy
    import pickle
    X, y = blobs
    model = fit_quick_model(X, labelled(y, range(0, 520, 4)))
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert clone.classes == model.classes
        assert np.array_equal(clone.predict_proba(X[:20]), model.predict_proba(X[:20]))


def test_identical_rows_still_give_n_picks():
    X = np.ones((10, 4))
    for strategy in STRATEGIES:
        picks = suggest_next(X, ["a", "b"] + [None] * 8, 3, strategy)
        assert len(picks) == len(set(picks)) == 3 and min(picks) >= 2, strategy
