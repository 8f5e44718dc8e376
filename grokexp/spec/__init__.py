"""Spec: text in, one validated, frozen ``Spec`` out (sections, parse, --set, JSON Schema).

Imports: errors only; never torch, numpy, mlflow, optuna, matplotlib or click.
"""
