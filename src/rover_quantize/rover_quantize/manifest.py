"""manifest.json of a model directory (contract: MODEL_DIR.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import __version__
from .checkpoint import file_sha256

FORMAT = 'rover-act-model'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'


def write_manifest(model_dir: Path, manifest: dict) -> Path:
    """Write atomically (a reader never sees half a manifest)."""
    path = Path(model_dir) / MANIFEST
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(manifest, indent=2) + '\n')
    os.replace(tmp, path)
    return path


def read_manifest(model_dir: Path) -> dict:
    from .errors import QuantizeError
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise QuantizeError(f'{path} not found (not a model directory?)') from None
    except json.JSONDecodeError as exc:
        raise QuantizeError(f'{path} is not valid JSON: {exc}') from None
    if manifest.get('format') != FORMAT:
        raise QuantizeError(f'{path} is not a {FORMAT} manifest')
    return manifest


def files_entry(model_dir: Path, names) -> dict:
    return {name: {'sha256': file_sha256(Path(model_dir) / name),
                   'bytes': (Path(model_dir) / name).stat().st_size} for name in names}


def verify_files(model_dir: Path, manifest: dict) -> list[str]:
    """Names whose sha256 does not match the manifest (missing files included)."""
    bad = []
    for name, entry in manifest.get('files', {}).items():
        path = Path(model_dir) / name
        if not path.is_file() or file_sha256(path) != entry['sha256']:
            bad.append(name)
    return bad


def created_by() -> str:
    return f'rover_quantize {__version__}'
