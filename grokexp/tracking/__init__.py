"""Tracking: the Tracker and its MLflow twin, store checks, recovery, redaction, checkpoints.

Imports: figures, engine, spec, errors; never optuna or click.
"""
