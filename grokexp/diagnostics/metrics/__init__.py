"""Pure metric functions: tensors in, numbers out. Nothing here logs or reads files."""
