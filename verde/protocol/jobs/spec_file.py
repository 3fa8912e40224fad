"""A job spec read from a file: the local paths it names are relative to the file.

Why: a spec names local files (a file dataset's ``location``, a program's model directory such
as the ``hf`` program's ``model``), and a user keeps them beside the spec; resolving them
against the working directory made ``verde delegate path/to/job.toml`` work only from one
directory. Here a relative path is read relative to the directory holding the spec file (an
absolute path, or one starting with ``~``, stays as given), so the same spec runs from
anywhere, and a path that does not exist is refused at once in one line naming the spec key
and the path as resolved.

What travels does not change: ``verde.protocol.jobs.portable`` replaces every local path by
digests (a dataset's sample root and description, a model directory's inlined config and
uploaded weights), so the id of the job sent to providers, its results and its certificates
do not depend on where the file was. (The local spec, which never leaves this machine, holds
the resolved absolute paths.)

Which config keys are paths is each program's to say: a program class may set ``local_paths``
(config keys naming local files or directories; the ``hf`` program's is ``("model",)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.spec import JobSpec, parse_spec_document


def load_job_spec(path: str | Path) -> JobSpec:
    """Load a spec file (.toml or .json, by suffix), its local paths relative to the file."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise JobSpecError(f"job spec {path}: expected a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobSpecError(f"job spec {path}: cannot read ({exc.strerror})") from exc
    data = parse_spec_document(text, path.suffix[1:])
    return JobSpec.from_mapping(resolve_local_paths(data, path))


def resolve_local_paths(data: dict[str, Any], spec_file: Path) -> dict[str, Any]:
    """``data`` with each local path it names resolved against ``spec_file``'s directory;
    ``JobSpecError`` naming the key and the resolved path for one that must exist and does
    not. Values of the wrong type are left for ``JobSpec.from_mapping`` to refuse."""
    base = Path(os.path.abspath(spec_file.parent))
    out = dict(data)
    for table, key, required in _local_path_keys(data):
        value = data[table][key]
        if not isinstance(value, str) or not value:
            continue
        try:
            given = Path(value).expanduser()
        except RuntimeError as exc:  # ~user of an unknown user
            raise JobSpecError(f"job spec {spec_file}: {table}.{key} = {value!r}: "
                               f"{exc}") from None
        resolved = given if given.is_absolute() else Path(os.path.normpath(base / given))
        if required and not resolved.exists():
            raise JobSpecError(f"job spec {spec_file}: {table}.{key} = {value!r} is "
                               f"{resolved}, which does not exist")
        out[table] = {**out[table], key: str(resolved)}
    return out


def _local_path_keys(data: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(table, key, must exist) of each local path ``data`` names."""
    keys: list[tuple[str, str, bool]] = []
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset.get("name") == "file" and "location" in dataset:
        # A described dataset may lack its file here: its samples come from uploads.
        keys.append(("dataset", "location",
                     "n_samples" not in dataset and "fields" not in dataset))
    config, name = data.get("config"), data.get("program")
    if isinstance(config, dict) and isinstance(name, str):
        from verde.protocol.jobs.registry import get_program

        try:
            program = get_program(name)
        except JobSpecError:
            return keys  # JobSpec.from_mapping names the unknown program
        paths = getattr(program, "local_paths", ())
        keys.extend(("config", key, True) for key in paths if key in config)
    return keys
