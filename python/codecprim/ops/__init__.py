"""Codec-primitive ops. Each public op runs on the device of its inputs: a vectorised torch twin
on CPU, a CuPy-loaded kernel from ``cuda/`` on CUDA, both with one contract.

One star-import line per op module; ``__all__`` is the union of their ``__all__`` lists.
"""

import sys as _sys

from .dense import *  # noqa: F403
from .fusion import *  # noqa: F403
from .resize import *  # noqa: F403
from .patchify import *  # noqa: F403
from .gather import *  # noqa: F403
from .saliency import *  # noqa: F403
from .camera import *  # noqa: F403
from .select import *  # noqa: F403
from .motion_estimation import *  # noqa: F403
from .warp import *  # noqa: F403
from .token_reduction import *  # noqa: F403

__all__ = sorted({name for key, module in list(_sys.modules.items())
                  if key.rpartition(".")[0] == __name__ and not key.rpartition(".")[2].startswith("_")
                  for name in getattr(module, "__all__", ())})
