"""Export: PyTorch networks to validated ONNX files, calibration, and the BentoML model store.

Submodules are imported explicitly (``from export.onnx import export_onnx``). This
package module stays empty on purpose: the service imports ``ecomgan.calibration``,
which must not pull in torch, onnx or bentoml.
"""
