"""Hyperparameter search of ``Predictor.fit`` on Optuna: search spaces, the study and its storage, the trials."""
