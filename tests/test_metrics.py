import numpy as np
import pytest
from sklearn import metrics as sk

from automm_lite.exceptions import ConfigError
from automm_lite.metrics import DEFAULT_METRIC, compute_metric, get_metric

y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
proba = np.array([[.8, .2], [.3, .7], [.4, .6], [.6, .4], [.2, .8], [.45, .55], [.7, .3], [.1, .9]])
pred = proba.argmax(1)


def test_classification_metrics_match_sklearn():
    assert compute_metric(get_metric("accuracy"), y, pred, proba) == sk.accuracy_score(y, pred)
    assert compute_metric(get_metric("roc_auc"), y, pred, proba) == pytest.approx(sk.roc_auc_score(y, proba[:, 1]))
    assert compute_metric(get_metric("log_loss"), y, pred, proba) == pytest.approx(sk.log_loss(y, proba))
    assert compute_metric(get_metric("f1"), y, pred, proba) == pytest.approx(sk.f1_score(y, pred))
    assert compute_metric(get_metric("balanced_accuracy"), y, pred, proba) == sk.balanced_accuracy_score(y, pred)


def test_multiclass_roc_auc_and_f1_macro():
    y3 = np.array([0, 1, 2, 2, 1, 0])
    p3 = np.array([[.7, .2, .1], [.2, .6, .2], [.1, .2, .7], [.3, .3, .4], [.5, .4, .1], [.6, .2, .2]])
    assert compute_metric(get_metric("roc_auc"), y3, p3.argmax(1), p3) == pytest.approx(
        sk.roc_auc_score(y3, p3, multi_class="ovr"))
    assert compute_metric(get_metric("f1_macro"), y3, p3.argmax(1), p3) == pytest.approx(
        sk.f1_score(y3, p3.argmax(1), average="macro"))


def test_regression_metrics():
    t, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.5, 4.5])
    assert compute_metric(get_metric("rmse"), t, p) == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
    assert compute_metric(get_metric("mae"), t, p) == pytest.approx(0.375)
    assert compute_metric(get_metric("r2"), t, p) == pytest.approx(sk.r2_score(t, p))
    assert compute_metric(get_metric("pearsonr"), t, p) > 0.9
    assert not get_metric("rmse").greater_is_better and get_metric("r2").greater_is_better


def test_names_aliases_defaults_and_errors():
    assert get_metric("ACC").name == "accuracy" and get_metric("root_mean_squared_error").name == "rmse"
    assert DEFAULT_METRIC == {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
    with pytest.raises(ConfigError, match="accuracy"):
        get_metric("acuracy")
    with pytest.raises(ConfigError, match="regression"):
        get_metric("accuracy", "regression")
