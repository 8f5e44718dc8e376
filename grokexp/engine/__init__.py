"""Engine: a spec's members trained as populations (data, sweep, init, model, step, optim, train).

Imports: spec, errors; never mlflow, optuna, matplotlib or click, nor files or the terminal.
"""
