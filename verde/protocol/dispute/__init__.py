"""The arbiter's logic for refereed delegation: a resumable dispute state machine, its rules,
verdicts and verdict certificates (Canetti, Riva, Rothblum 2011; Verde, Arun et al. 2025)."""
