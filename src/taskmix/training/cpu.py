"""The ``cpu:`` config keys applied to a run, and what took effect (``report.json``'s ``cpu``).

Three switches make CPU training fast (docs/training.md, Speed); each was an environment
variable, and is now a config key whose default is that variable, so a run's folder says how it
ran and a resume may change them (they are not run-defining):

* ``onednn``: fp32 products through oneDNN (``models.onednn``); set for the run, put back after.
  In effect only if its self-check passes.
* ``malloc_tuning``: glibc malloc keeps freed memory (``training.allocator``); once per process,
  on the CPU device.
* ``huge_pages``: transparent huge pages for torch's allocator, read by torch at its first
  allocation, so it can only be set before torch is imported: the ``taskmix`` command does
  that from the config; here it is only reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from taskmix.models.onednn import onednn_enabled, onednn_setting, set_onednn
from taskmix.training.allocator import huge_pages_requested, keep_freed_memory
from taskmix.training.config import CpuConfig


def apply_cpu_settings(
    cpu: CpuConfig, device: torch.device
) -> tuple[dict[str, bool], Callable[[], None]]:
    """Apply ``cpu``; returns what is in effect and a function that puts oneDNN back."""
    before = onednn_setting()
    set_onednn(cpu.onednn)
    effective = {
        "onednn": onednn_enabled(torch.zeros(1)),  # False if its self-check failed
        "malloc_tuning": keep_freed_memory(cpu.malloc_tuning) if device.type == "cpu" else False,
        "huge_pages": huge_pages_requested(),
    }
    if "huge_pages" in cpu.model_fields_set and cpu.huge_pages != effective["huge_pages"]:
        warnings.warn(
            f"cpu.huge_pages: {str(cpu.huge_pages).lower()} has no effect here: torch reads "
            "THP_MEM_ALLOC_ENABLE before this run started; the taskmix command sets it from the "
            "config (from Python, set the variable before importing torch)",
            RuntimeWarning,
            stacklevel=2,
        )
    return effective, lambda: set_onednn(before)
