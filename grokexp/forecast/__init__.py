"""Forecast: which logged signal warns of grokking, how early; a forecast of the grok epoch.

Imports: numpy, series, grokking, errors (pure functions of series); never torch, mlflow, optuna.
"""
