"""What machine a bench ran on: CPU model, instruction-set features, load, tool versions.

onnxruntime picks its int8 and fp32 kernels from the CPU's features, so every verdict of a bench is
a verdict for one ISA class, and every report names it.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from pathlib import Path

# The CPU flags (Linux /proc/cpuinfo names) that change which kernels onnxruntime and LiteRT run.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "amx_int8", "asimd", "asimddp", "i8mm", "sve")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (an extra's module is absent from a runtime-only install)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook may refuse outright rather than find nothing
        return False


def _cpuinfo() -> str:
    info = Path("/proc/cpuinfo")
    return info.read_text() if info.exists() else ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags ("flags" on x86, "Features" on ARM); empty where /proc is absent."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def isa_class(flags: set[str]) -> str:
    """The one name a verdict is stated for: the best int8 dot-product feature present."""
    for flag, name in (("amx_int8", "AMX"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"),
                       ("avx512bw", "AVX-512"), ("avx2", "AVX2"), ("i8mm", "ARMv8.6 I8MM"),
                       ("asimddp", "ARMv8.2 dot product"), ("asimd", "NEON"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return "unknown"


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    """CPU model, ISA class and flags, core count, platform, load now, and tool versions."""
    from edgehisto.bundle.provenance import tool_versions

    cpuinfo = _cpuinfo()
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    flags = cpu_flags(cpuinfo)
    return {"cpu": names[0] if names else (platform.processor() or platform.machine()),
            "isa": isa_class(flags), "isa_flags": [f for f in ISA_FLAGS if f in flags],
            "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": load_average(),
            "versions": tool_versions(("edgehisto", "tensorflow-cpu", "keras", "onnxruntime", "ai-edge-litert",
                                       "numpy", "opencv-python-headless"))}
