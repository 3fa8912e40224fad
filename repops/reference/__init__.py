"""Slow, obviously correct numpy implementations written straight from SPEC.md.

Every kernel is tested bit for bit against these. They favour clarity over speed: loops follow
the spec's order literally; use them on small shapes only.
"""
