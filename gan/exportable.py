"""What a family hands to `export/`: a network ready for ONNX, with example inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
