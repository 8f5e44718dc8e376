"""grokexp: declarative grokking experiments on populations of small networks.

One subpackage per stage, each importing only those before it: spec, engine, figures,
tracking, diagnostics, run, study, paper, cli (docs/design.md; tests/test_layout.py).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
