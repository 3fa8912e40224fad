"""Compiled (numba) repops kernels, one module per operator family; see repops/SPEC.md."""
