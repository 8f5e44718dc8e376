"""Run: a spec's members trained, diagnosed and logged (the runner, its hooks), after a budget.

Imports: diagnostics, tracking, figures, engine, spec, errors; never mlflow, optuna or click.
"""
