"""Figures: data in, a matplotlib Figure out (run, paper, sweep and study figures); never saved.

Imports: engine, spec, errors; never mlflow, optuna or click, nor files or the terminal.
"""
