"""Tracking: the Tracker, its MLflow twin and RunReader, retries, recovery, checkpoints.

Imports: figures, engine, spec, errors; never optuna or click.
"""
