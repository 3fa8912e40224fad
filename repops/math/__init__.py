"""repops' own elementwise math functions (exp, log, tanh, erf, sin, cos, pow, ...).

Why they exist: libm, SLEEF and vendor math libraries give different bits on different
platforms, so SPEC.md (C7) forbids them. Every function here is built from the C2 operations
only (``+ - * /``, ``sqrt`` and explicit ``fma``) with a fixed range reduction and a fixed
Horner order; the exact definitions and measured ulp errors are in repops/spec/elementwise.md.

One module per function family (``exp``, ``log``, ...); each exports numba-callable scalar
functions decorated with :func:`repops._numba.inline_jit`, usable inside other repops kernels. This
package docstring imports nothing on purpose: importing a family compiles nothing either
(numba compiles lazily on first call).
"""
