"""What a family hands to `export/`: networks ready for ONNX, and detector calibration data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# ``calibration_inputs``' result: (real inputs, fake inputs) of the discriminator, one array
# per ONNX input each, e.g. ((images, labels), (images, labels)).
CalibrationInputs = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class Exportable:
    """One network to export.

    Attributes:
        module: The network in eval mode, with training-only wrappers removed.
        example_inputs: One tensor per ONNX input; dimension 0 is the batch.
        input_names: ONNX input names, in the order ``module.forward`` takes them.
        output_names: ONNX output names, in the order ``module.forward`` returns them.
    """

    module: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
