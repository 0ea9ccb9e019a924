"""The processes of one run: who does the run folder's one-off work, and how the others learn its outcome.

A run launched on several processes (``accelerate launch --multi_gpu --num_processes N`` or
``torchrun --nproc_per_node N``, on GPUs or, without them, on CPUs over gloo) has one main process.
It alone checks and prepares the run folder, builds the warm-start policy and picks the checkpoint
to resume from; the others wait and then use what it made. A failure on the main process is
raised on every process with the same message, so no process waits for a partner that has gone.

With one process every helper here simply calls the function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Environment variables through which launchers tell a process how many processes the run has.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def processes():
    """The run's process state (``accelerate.PartialState``; it joins the process group when launched
    on several processes). The trainer's ``Accelerator`` shares it."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def lost_processes(environ=None) -> str | None:
    """Why this launch runs fewer processes than asked, or None.

    ``accelerate launch --cpu --num_processes N`` (N > 1) without an MPI host file starts ONE
    process: it sets ``MASTER_ADDR`` for the processes it expects ``mpirun`` to start and leaves
    the world size unset. That run would silently train alone, so it is refused with the launch
    that works.
    """
    env = os.environ if environ is None else environ
    asked_cpu = str(env.get("ACCELERATE_USE_CPU", "")).lower() in ("1", "true", "yes")
    if asked_cpu and "MASTER_ADDR" in env and not any(k in env for k in WORLD_SIZE_VARIABLES):
        return ("`accelerate launch --cpu` with more than one process starts only one (more need mpirun); "
                "launch `accelerate launch --multi_gpu --num_processes N -m worldsmith.cli ...` or "
                "`torchrun --nproc_per_node N -m worldsmith.cli ...`, which run on CPUs when there is no GPU")
    return None


def _share(outcome: tuple) -> tuple:
    """The main process's ``outcome`` on every process."""
    from accelerate.utils import broadcast_object_list

    box = [outcome]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _run(fn: Callable[[], T]) -> tuple:
    try:
        return (True, fn())
    except Exception as exc:  # carried to the other processes, then raised everywhere
        return (False, exc)


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` on the main process only; every process returns its result (or raises its error)."""
    state = processes()
    if state.num_processes == 1:
        return fn()
    ok, value = _share(_run(fn) if state.is_main_process else (True, None))
    if not ok:
        raise value
    return value


def main_first(fn: Callable[[], T]) -> T:
    """``fn()`` on the main process, then on the others (which may then use what it wrote); an
    error on the main process is raised on all of them without running ``fn`` again."""
    state = processes()
    if state.num_processes == 1:
        return fn()
    if state.is_main_process:
        ok, value = _share(_run(fn))
        if not ok:
            raise value
        return value
    ok, value = _share((True, None))
    if not ok:
        raise value
    return fn()
