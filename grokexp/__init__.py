"""grokexp: declarative grokking experiments on populations of small networks."""

__version__ = "0.1.0"
__all__ = ["__version__"]
