"""The built-in ``hf`` program: Hugging Face ``transformers`` models as verde jobs.

``program.py`` (the program: config, tasks, data checks, initialisation), ``source.py`` (where
a model comes from: a local directory or an inline config, and their digests), ``adapter.py``
(what makes an HF forward pass disputable: buffers, masks, positions, eager attention) and
``checkpoint.py`` (HF checkpoint names to program parameters). ``transformers`` is an optional
extra (``verde[hf]``): nothing here imports it until an ``hf`` job is built.
"""
