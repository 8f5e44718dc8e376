"""The path README documented for redaction, kept: the code is grokexp/tracking/redact.py.

Nothing in grokexp imports this module (tests/test_layout.py checks); it is for users' code.
"""

from .tracking.redact import redact_params, redact_text, redact_uri

__all__ = ["redact_uri", "redact_text", "redact_params"]
