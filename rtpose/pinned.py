"""Page-locked ("pinned") host memory for the frames the GPU reads, through the CUDA runtime's C API.

A copy from ordinary (pageable) host memory to the GPU goes through a driver
staging buffer, one extra copy and a synchronisation; from page-locked memory
the GPU's copy engine reads the frames directly (DMA). ONNX Runtime's Python API
cannot allocate page-locked memory for an input, so :class:`PinnedMemory` locks
the pages of NumPy buffers rtpose allocated anyway (``cudaHostRegister``), and
unlocks them before they are freed (``cudaHostUnregister``).

The CUDA runtime library is the one ONNX Runtime's CUDA provider already
loaded (looked up by name); without it (a CPU install, another CUDA major
version) nothing is pinned and :attr:`PinnedMemory.reason` says why: the run
works the same, its host-to-device copies are only slower.
"""

from __future__ import annotations

import ctypes

import numpy as np

#: CUDA runtime library names, newest first (onnxruntime-gpu 1.2x/1.3x: CUDA 12 or 13).
CUDART_NAMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so", "cudart64_13.dll", "cudart64_12.dll")
CUDA_HOST_REGISTER_DEFAULT = 0


def load_cudart(loader=ctypes.CDLL):
    """The CUDA runtime library, or ``(None, reason)``."""
    errors = []
    for name in CUDART_NAMES:
        try:
            return loader(name), ""
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    return None, "no CUDA runtime library could be loaded (" + "; ".join(errors[:2]) + ")"


class PinnedMemory:
    """Locks and unlocks the pages of NumPy arrays. ``cudart``: the CUDA runtime (tests pass a fake)."""

    def __init__(self, cudart=None, reason: str = ""):
        if cudart is None and not reason:
            cudart, reason = load_cudart()
        self._cudart = cudart
        self.reason = reason
        self._pinned: dict[int, int] = {}  # address -> bytes

    @property
    def available(self) -> bool:
        return self._cudart is not None

    def pin(self, array: np.ndarray) -> bool:
        """Page-lock ``array``'s memory (C-contiguous); False (and :attr:`reason`) when it cannot."""
        if self._cudart is None or array.nbytes == 0:
            return False
        if not array.flags.c_contiguous:
            raise ValueError("only C-contiguous buffers can be pinned")
        address = array.ctypes.data
        if address in self._pinned:
            return True
        status = self._cudart.cudaHostRegister(ctypes.c_void_p(address), ctypes.c_size_t(array.nbytes),
                                               ctypes.c_uint(CUDA_HOST_REGISTER_DEFAULT))
        if status != 0:
            self.reason = f"cudaHostRegister failed with CUDA error {status}"
            return False
        self._pinned[address] = array.nbytes
        return True

    def unpin(self, array: np.ndarray) -> None:
        address = array.ctypes.data
        if self._pinned.pop(address, None) is not None:
            self._cudart.cudaHostUnregister(ctypes.c_void_p(address))

    def unpin_all(self) -> None:
        for address in list(self._pinned):
            self._pinned.pop(address)
            self._cudart.cudaHostUnregister(ctypes.c_void_p(address))

    @property
    def pinned_bytes(self) -> int:
        return sum(self._pinned.values())
