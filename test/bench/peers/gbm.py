#!/usr/bin/env python3
"""Gradient-boosted peers for the accuracy benchmark (test/bench/accuracy.ts, issue 14).

Fits LightGBM (native categorical splits) and scikit-learn's HistGradientBoostingRegressor
(`categorical_features`) on each fold's training rows, one regressor per target, and predicts
the fold's held-out rows. Targets arrive on the model's learning scale (log10; duration per
output frame) and predictions go back on that scale; the bench multiplies them back.

    python3 gbm.py IN.json OUT.json

IN.json:
    {"numeric": [names], "categorical": [names], "targets": [names],
     "folds": [{"train": {"num": [[x|null]], "cat": [[s|null]], "y": {target: [y|null]}},
                "test":  {"num": [[x|null]], "cat": [[s|null]]}}]}
OUT.json:
    {"lightgbm": {"folds": [{target: [y|null]}], "seconds": s} | {"error": why},
     "histgb":   the same}

A peer that cannot be imported or fails is reported with its error; the other still runs.
"""
import json
import sys
import time

import numpy as np

# Categories per column: the most frequent in the fold's training rows, at most this many
# (HistGradientBoosting takes fewer than 255 bins per categorical feature); others are missing.
MAX_CATEGORIES = 250
# Regressors with fewer training rows than this are not fitted for a target.
MIN_ROWS = 5


def vocabularies(train_cat, n_cols):
    """Per categorical column, value -> code, most frequent first (ties by name: deterministic)."""
    vocabs = []
    for j in range(n_cols):
        counts = {}
        for row in train_cat:
            v = row[j]
            if v is not None:
                counts[v] = counts.get(v, 0) + 1
        ordered = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_CATEGORIES]
        vocabs.append({v: i for i, v in enumerate(ordered)})
    return vocabs


def matrix(part, vocabs):
    """Numeric columns as floats (null -> NaN), then categorical columns as codes (unseen -> NaN)."""
    rows = [
        [np.nan if v is None else float(v) for v in num]
        + [np.nan if v is None or v not in vocabs[j] else float(vocabs[j][v]) for j, v in enumerate(cat)]
        for num, cat in zip(part["num"], part["cat"])
    ]
    return np.array(rows, dtype=float).reshape(len(rows), -1) if rows else np.empty((0, 0))


def lightgbm_regressor():
    import lightgbm as lgb

    def fit_predict(x, y, x_test, categorical):
        m = lgb.LGBMRegressor(
            n_estimators=300, learning_rate=0.05, num_leaves=31, min_child_samples=5,
            # Categorical splits need this many rows per category (default 100): few rows here.
            min_data_per_group=5,
            # One thread: OpenMP's spinning threads on a small, busy machine took 60x longer.
            n_jobs=1, random_state=1, deterministic=True, force_row_wise=True, verbose=-1,
        )
        m.fit(x, y, categorical_feature=[i for i, c in enumerate(categorical) if c])
        return m.predict(x_test)

    return fit_predict


def histgb_regressor():
    from sklearn.ensemble import HistGradientBoostingRegressor

    def fit_predict(x, y, x_test, categorical):
        m = HistGradientBoostingRegressor(categorical_features=np.array(categorical, dtype=bool), random_state=1)
        m.fit(x, y)
        return m.predict(x_test)

    return fit_predict


def run_peer(make, data):
    started = time.time()
    try:
        fit_predict = make()
        categorical = [False] * len(data["numeric"]) + [True] * len(data["categorical"])
        folds = []
        for fold in data["folds"]:
            vocabs = vocabularies(fold["train"]["cat"], len(data["categorical"]))
            x = matrix(fold["train"], vocabs)
            x_test = matrix(fold["test"], vocabs)
            # Columns no training row has (a log without GOP or input size) say nothing, and
            # HistGradientBoosting cannot bin them.
            known = [j for j in range(len(categorical)) if len(x) and not np.isnan(x[:, j]).all()]
            x, x_test = x[:, known], x_test[:, known] if len(x_test) else x_test
            cats = [categorical[j] for j in known]
            out = {}
            for t in data["targets"]:
                ys = fold["train"]["y"].get(t, [])
                keep = [i for i, v in enumerate(ys) if v is not None]
                if len(keep) < MIN_ROWS or len(x_test) == 0:
                    out[t] = [None] * len(x_test)
                    continue
                y = np.array([ys[i] for i in keep], dtype=float)
                p = fit_predict(x[keep], y, x_test, cats)
                out[t] = [float(v) if np.isfinite(v) else None for v in p]
            folds.append(out)
        return {"folds": folds, "seconds": round(time.time() - started, 2)}
    except Exception as e:  # an import or a fit that fails: reported, the other peer goes on
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gbm.py IN.json OUT.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    result = {
        "lightgbm": run_peer(lightgbm_regressor, data),
        "histgb": run_peer(histgb_regressor, data),
    }
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
