"""Pure metric functions: tensors in, numbers out. Nothing here logs or reads files.

Accuracy and loss, which the training loop itself needs, are the engine's (engine/accuracy.py).
"""
