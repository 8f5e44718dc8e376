"""Paper: ``grokexp reproduce`` and ``figures``: the paper's specs, claims, checks, the gallery.

Imports: run, diagnostics, tracking, figures, engine, spec, errors; never mlflow, optuna, click.
"""
