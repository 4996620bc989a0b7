"""manifest.json of a model directory, as rover_quantize reads and writes it (the contract
itself, file names and checks: model_contract.py and MODEL_DIR.md)."""
from __future__ import annotations

from pathlib import Path

from . import __version__
from .errors import QuantizeError
from rover_common.model_contract import ContractError
from rover_common.model_contract import read_manifest as _read


def read_manifest(model_dir: Path) -> dict:
    """The manifest, or a QuantizeError (one line for the CLI) saying what is wrong."""
    try:
        return _read(model_dir)
    except ContractError as exc:
        raise QuantizeError(str(exc)) from None


def created_by() -> str:
    return f'rover_quantize {__version__}'
