"""Child processes that die with their parent: the kernel's parent-death signal (Linux).

A benchmark killed outright (SIGKILL, an OOM kill, a closed terminal) cannot stop the API
servers it started, and a `serve --workers N` supervisor killed that way cannot stop its API
processes: they stayed up, holding ports and connections. With PR_SET_PDEATHSIG the kernel
sends the child a signal when its parent dies, whatever killed the parent; SIGTERM lets the
child shut down as usual. The setting survives exec, so it can be made in the forked child
before the command starts (`preexec_fn`). Elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

# Looked up once, in the parent: the forked child then only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have `sig` sent to this process when `parent` (its parent now) dies.

    The signal is tied to the thread that started the child: start children from a thread
    that lives as long as they should (the main thread). A parent already dead by the time
    this runs sends nothing, so that case is caught here.
    """
    if _prctl is None:
        return
    if _prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def tethered() -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child dies with the process starting it."""
    parent = os.getpid()
    return lambda: die_with_parent(parent)
