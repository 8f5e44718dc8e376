"""Run: a spec's members trained, diagnosed and logged (the runner), after the memory budget.

Imports: diagnostics, tracking, figures, engine, spec, errors; never mlflow, optuna or click.
"""
