"""Study: ``grokexp optimize``: ask-and-tell, space, batches as populations, storage, report.

Imports: run, diagnostics, tracking, figures, engine, spec, errors; never mlflow or click.
"""
