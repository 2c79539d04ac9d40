"""``--compile``: torch.compile of the model's image and text towers, for evaluation and training.

Why per tower module and in place (``nn.Module.compile``): the wrapped modules keep their parameters and
state-dict keys, so checkpoints, parameter groups and the attacks' gradient paths are unchanged; only the
forward/backward kernels differ. It is off by default: on the CPUs measured here it did not pay for its
compilation time (bench/RESULTS_throughput.md); on a GPU it may, and the device check measures it.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def compile_towers(model: nn.Module) -> nn.Module:
    """Compile every module of ``model``'s image and text towers in place; returns ``model``."""
    towers = getattr(model, "_towers", None)
    if towers is None:
        raise ConfigError(f"--compile needs a VisionLanguageModel, got {type(model).__name__}")
    for modules in towers().values():
        for module in modules:
            if isinstance(module, (nn.ParameterList, nn.ParameterDict)):
                continue  # holders of bare parameters have no forward to compile
            module.compile()
    return model
