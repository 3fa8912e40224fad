"""verde inside the engines users already run.

Each sub-package wraps one outside engine around verde's toolkits and is the only place that
imports it, so verde itself imports without any of them: ``verde.engines.flower`` (needs
the ``verde[flower]`` extra) and ``verde.engines.torch_distributed`` (torch only). Nothing
in verde imports this package; an import-linter contract keeps it that way.
"""
