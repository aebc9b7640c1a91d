"""Training code: PyTorch models, data loaders and training loops, one subpackage per family."""
