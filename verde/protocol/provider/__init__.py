"""The provider side of refereed delegation: run a job, commit to it, answer dispute queries."""
