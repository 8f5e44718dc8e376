"""Diagnostics: the paper's metrics (pure), the hook that calls them, the background probes.

Imports: tracking, figures, engine, spec, errors; never mlflow, optuna, click, files, terminal.
"""
