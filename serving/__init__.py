"""Serving runtime: ONNX Runtime sessions, the family-generic model gateway and both OIP protocols.

Nothing here imports torch: a bento carries only numpy, onnxruntime and this package.
"""
