"""``RemovableHandle``: what every ``register_*_hook`` returns, as in ``torch.utils.hooks``."""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict
from typing import Any

__all__ = ["RemovableHandle"]


class RemovableHandle:
    """Removes the hook it was returned for: ``handle.remove()``, or use it as a context manager.

    The registry is held weakly, so a handle never keeps a dead optimizer or module alive.

    >>> hooks = OrderedDict()
    >>> h = RemovableHandle(hooks)
    >>> hooks[h.id] = print
    >>> h.remove()
    >>> len(hooks)
    0
    """

    _next_id = itertools.count()

    def __init__(self, hooks_dict: "OrderedDict[int, Any]", *, extra_dict: Any = None) -> None:
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = next(RemovableHandle._next_id)
        # dicts that hold per-hook flags (with_kwargs, always_call), cleaned up on remove()
        extras = [] if extra_dict is None else extra_dict if isinstance(extra_dict, list) else [extra_dict]
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extras)

    def remove(self) -> None:
        """Unregisters the hook (a second call does nothing)."""
        hooks_dict = self.hooks_dict_ref()
        if hooks_dict is not None and self.id in hooks_dict:
            del hooks_dict[self.id]
        for ref in self.extra_dict_ref:
            d = ref()
            if d is not None and self.id in d:
                del d[self.id]

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()
