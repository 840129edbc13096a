"""numba kernels that are compiled on first use, not on import.

numba (with llvmlite) takes about half a second to import, so a module of kernels collects them
with a :class:`LazyKernels` and jits them all on the first call of any: importing the module (the
segmenter registry, ``veil list``, a scan whose images are all safe) never imports numba.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])


class LazyKernels:
    """A decorator that makes each function of one module an ``@njit(cache=True)`` kernel on first use.

    Parameters
    ----------
    namespace : dict
        The module's ``globals()``: each kernel's stand-in there is replaced by its numba dispatcher.
        All kernels are jitted at once, because a kernel that calls another resolves the callee
        through the module's globals when it compiles: they must be dispatchers by then.

    Examples
    --------
    >>> _kernel = LazyKernels(globals())
    >>> @_kernel
    ... def twice(x):
    ...     return 2 * x
    >>> sorted(_kernel.kernels)
    ['twice']
    """

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.kernels: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self._jitted = False

    def __call__(self, fn: _F) -> _F:
        self.kernels[fn.__name__] = fn

        @wraps(fn)
        def first_call(*args: Any) -> Any:
            self.jit()
            return self.namespace[fn.__name__](*args)

        return cast(_F, first_call)

    def jit(self) -> None:
        """Replace every kernel's stand-in by its numba dispatcher (once)."""
        with self._lock:
            if self._jitted:
                return
            from numba import njit

            for name, fn in self.kernels.items():
                self.namespace[name] = njit(cache=True)(fn)
            self._jitted = True
