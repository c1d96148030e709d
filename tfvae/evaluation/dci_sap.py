"""DCI and SAP: disentanglement metrics that fit predictors from codes to factors.

Both follow disentanglement_lib (dci.py, sap_score.py) with its study's settings:
10,000 training and 5,000 test points. Import them from
`tfvae.evaluation.disentanglement`, whose docstring describes `encoder`, `data`, `seed`.
"""

import numpy as np
from scipy.stats import entropy as _entropy

from tfvae.evaluation.factor_codes import ENCODE_BATCH, check_count, sample_codes
from tfvae.evaluation.ground_truth import check_ground_truth


def _train_test(encoder, data, seed, num_train, num_test, encode_batch):
    data = check_ground_truth(data)
    check_count("num_train", num_train, 2, "predictors need training points")
    check_count("num_test", num_test, 1, "the score needs test points")
    rng = np.random.default_rng(seed)
    train = sample_codes(encoder, data, num_train, rng, encode_batch=encode_batch)
    test = sample_codes(encoder, data, num_test, rng, encode_batch=encode_batch)
    for k, name in enumerate(data.factor_names):
        if len(np.unique(train[1][:, k])) < 2:
            raise ValueError(f"factor {name!r} takes a single value in the {num_train} "
                             f"training points; increase num_train.")
    return train, test


def importance_disentanglement(importance):
    """D: sum_d rho_d (1 - H_K(P_d.)), P_d. = importance [D, K] row d normalized, rho_d =
    dim d's share of the total importance (Eastwood & Williams 2018, Sec. 2)."""
    importance = np.asarray(importance, np.float64)
    per_code = 1.0 - _entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def importance_completeness(importance):
    """C: sum_k rho_k (1 - H_D(P_.k)), the same with codes and factors swapped."""
    importance = np.asarray(importance, np.float64)
    per_factor = 1.0 - _entropy(importance + 1e-11, base=importance.shape[0])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def dci(encoder, data, seed=0, num_train=10000, num_test=5000,
        encode_batch=ENCODE_BATCH):
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018).

    One scikit-learn `GradientBoostingClassifier` (its defaults, as disentanglement_lib:
    100 trees of depth 3; `random_state` from `seed`) per factor predicts the factor's
    class from the whole code. Its feature importances form the matrix R [D, K]:
    disentanglement says how much each code dim is about one factor only, completeness how
    much each factor is captured by one dim only; informativeness is the classifiers'
    mean accuracy (train and test; chance is about 1 / classes).

    Args:
        num_train, num_test: points. Default values: 10000, 5000.

    Returns:
        dict: "disentanglement", "completeness", "informativeness_train",
        "informativeness_test", "importance" [D, K].
    """
    from sklearn.ensemble import GradientBoostingClassifier
    (x, y), (x_test, y_test) = _train_test(encoder, data, seed, num_train, num_test,
                                           encode_batch)
    importance = np.zeros((x.shape[1], y.shape[1]))
    train_acc, test_acc = [], []
    for k in range(y.shape[1]):
        model = GradientBoostingClassifier(random_state=seed + k).fit(x, y[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(x) == y[:, k]))
        test_acc.append(np.mean(model.predict(x_test) == y_test[:, k]))
    return {"disentanglement": importance_disentanglement(importance),
            "completeness": importance_completeness(importance),
            "informativeness_train": float(np.mean(train_acc)),
            "informativeness_test": float(np.mean(test_acc)), "importance": importance}


def sap(encoder, data, seed=0, num_train=10000, num_test=5000, continuous_factors=False,
        encode_batch=ENCODE_BATCH):
    """Separated Attribute Predictability (Kumar et al. 2018, Sec. 3).

    A score matrix S [D, K] rates how well code dim d alone predicts factor k; SAP is the
    mean over factors of the gap between the two best dims. Discrete factors (the
    disentanglement_lib study's setting, used for its published ranges): S is the test
    accuracy of a `LinearSVC(C=0.01, class_weight="balanced")` on the single dim.
    `continuous_factors=True`: S is the squared correlation cov(z_d, y_k)^2 / (var z_d
    var y_k) on the training points, 0 for a dim whose variance is at most 1e-12 (the
    threshold of disentanglement_lib).

    Returns:
        dict: "sap", "score_matrix" [D, K].
    """
    (x, y), (x_test, y_test) = _train_test(encoder, data, seed, num_train, num_test,
                                           encode_batch)
    scores = np.zeros((x.shape[1], y.shape[1]))
    if continuous_factors:
        xc, yc = x - x.mean(0), (y - y.mean(0)).astype(np.float64)
        cov = xc.T @ yc / (len(x) - 1)
        var_x, var_y = xc.var(0, ddof=1), yc.var(0, ddof=1)
        ok = var_x > 1e-12
        scores[ok] = cov[ok] ** 2 / (var_x[ok, None] * var_y[None])
    else:
        from sklearn.svm import LinearSVC
        for d in range(x.shape[1]):
            for k in range(y.shape[1]):
                model = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
                model.fit(x[:, d:d + 1], y[:, k])
                scores[d, k] = np.mean(model.predict(x_test[:, d:d + 1]) == y_test[:, k])
    top = np.sort(scores, axis=0)
    return {"sap": float(np.mean(top[-1] - top[-2])), "score_matrix": scores}
