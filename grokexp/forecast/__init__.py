"""Forecast: which logged signal warns of grokking, how early; a forecast of the grok epoch.

Imports: numpy and errors only (pure functions of histories); never torch, mlflow or optuna.
"""
