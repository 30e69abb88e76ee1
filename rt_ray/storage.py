"""Where a stage's outputs live: a local folder or an object-store URI (``s3://bucket/prefix``, ``gs://``,
any filesystem ``pyarrow.fs`` opens from a URI).

    out = local_dir(cfg.train.output_dir)         # the folder a stage writes in (for a URI: its staging copy)
    publish(cfg.train.output_dir, "summary.json") # the staged file (or folder) copied to the URI
    folder = fetched(model_location)              # a model folder on this node, downloaded once per version

A stage writes what it makes into a local folder first: Hugging Face's ``save_pretrained``, JSONL
writers and Matplotlib want files. With a URI as its output, that folder is a staging copy under
``RT_RAY_STAGING_DIR`` and the stage uploads what it finished. Ray Train and Tune write their
checkpoints and state to the URI themselves (``storage_path``).

Credentials and the endpoint come from the environment of every node (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for an S3-compatible store other than AWS, an
instance profile, ``GOOGLE_APPLICATION_CREDENTIALS``), as Arrow and Ray read them; never from the
config, so no secret reaches MLflow or job metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

# The marker a downloaded folder holds: the listing it was downloaded from (a model retrained to the
# same URI lists other modification times, even at the same sizes, and is downloaded again).
FETCHED_MARKER = ".rt_ray_fetched.json"


def is_remote(location: str | Path) -> bool:
    """A URI with a scheme other than file:// (``s3://b/p``); a Path or a plain path is local."""
    return not isinstance(location, Path) and "://" in location and not location.startswith("file://")


def join(location: str | Path, *parts: str) -> str | Path:
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location, *parts)


def staging_root() -> Path:
    return Path(os.environ.get("RT_RAY_STAGING_DIR", "~/.cache/rt-ray")).expanduser()


def local_dir(location: str | Path) -> Path:
    """The local folder a stage writes in: the location itself, or for a URI its staging copy
    (``<staging>/staged/<scheme>/<bucket>/<prefix>``: one per URI, so a rerun on this node finds its work)."""
    if not is_remote(location):
        return Path(location)
    uri = urlparse(str(location))
    return staging_root() / "staged" / uri.scheme / uri.netloc / uri.path.strip("/")


def ray_storage_path(location: str | Path, name: str) -> str:
    """Ray Train's / Tune's ``storage_path`` under an output location: the URI, or an absolute local path."""
    if is_remote(location):
        return str(join(location, name))
    return str((Path(location) / name).resolve())


def _filesystem(location: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(location)  # (filesystem, path inside it)


def read_bytes(location: str | Path) -> bytes:
    """One file's bytes, from a local path or a URI (``s3://bucket/data.csv``). Raises FileNotFoundError or OSError."""
    if not is_remote(location):
        return Path(location).read_bytes()
    filesystem, inner = _filesystem(str(location))
    with filesystem.open_input_stream(inner) as stream:
        return stream.read()


def publish(location: str | Path, *names: str) -> None:
    """Copy what a stage staged for a URI location there: the named files or folders (a folder
    replaces the one at the URI, so no file of an older version lingers), or everything. No-op when local."""
    if not is_remote(location):
        return
    import pyarrow.fs as pafs

    local = local_dir(location)
    filesystem, root = _filesystem(str(location))
    for name in names or [p.name for p in local.iterdir()]:
        source, target = local / name, f"{root}/{name}"
        if source.is_dir():
            filesystem.delete_dir_contents(target, missing_dir_ok=True)
            pafs.copy_files(str(source), target, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=filesystem, use_threads=True)  # fmt: skip
        elif source.is_file():
            filesystem.create_dir(root, recursive=True)
            with source.open("rb") as f, filesystem.open_output_stream(target) as out:
                shutil.copyfileobj(f, out)


def _file_infos(location: str) -> dict:
    """{relative path: pyarrow FileInfo} of the files under a URI; empty when nothing is there."""
    import pyarrow.fs as pafs

    filesystem, root = _filesystem(location)
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {info.path[len(root) :].lstrip("/"): info for info in infos if info.type == pafs.FileType.File}


def remote_files(location: str) -> dict[str, int]:
    """{relative path: size} of the files under a URI; empty when nothing is there."""
    return {name: info.size for name, info in _file_infos(location).items()}


def fetched(location: str | Path) -> Path:
    """A folder at ``location`` as a local folder: itself when local; for a URI, a copy under the staging
    root, downloaded when the URI's listing (names, sizes, modification times) differs from the copy's
    (a model retrained to the same URI) and replaced atomically, so concurrent readers on a node never
    see half of one."""
    if not is_remote(location):
        return Path(location)
    import pyarrow.fs as pafs

    listing = {name: [info.size, info.mtime_ns] for name, info in _file_infos(str(location)).items()}
    if not listing:
        raise FileNotFoundError(f"nothing at {location}")
    version = hashlib.sha256(json.dumps(sorted(listing.items())).encode()).hexdigest()[:16]
    target = staging_root() / "fetched" / hashlib.sha256(str(location).encode()).hexdigest()[:16] / version
    if (target / FETCHED_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
    filesystem, root = _filesystem(str(location))
    pafs.copy_files(root, str(partial), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem(),
                    use_threads=True)  # fmt: skip
    (partial / FETCHED_MARKER).write_text(json.dumps({"location": str(location), "files": listing}))
    try:
        partial.rename(target)
    except OSError:  # another reader on this node finished first: its copy is the same version
        shutil.rmtree(partial, ignore_errors=True)
    return target
