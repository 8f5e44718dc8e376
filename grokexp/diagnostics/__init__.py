"""Diagnostics: the paper's metrics (pure), the probes and their queue, the hook, schedules.

Imports: tracking, figures, engine, spec, errors; never mlflow, optuna, click, files, terminal.
"""
