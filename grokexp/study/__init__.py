"""Study: ``grokexp optimize``: ask-and-tell, batches as populations, storage, objective, report.

Imports: run, diagnostics, tracking, figures, engine, spec, errors; never mlflow or click.
"""
