"""ecomgan: GANs for e-commerce, trained in PyTorch, served from ONNX with BentoML."""

__version__ = "0.1.0"
