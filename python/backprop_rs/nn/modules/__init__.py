"""``torch.nn.modules`` paths (``nn.modules.module.register_module_forward_hook``, ...), for
programs that import from them; the layers themselves live in ``backprop_rs.nn``."""

from . import module as module

__all__ = ["module"]
