"""The virtual Arduino link of one simulated-rover run."""
from __future__ import annotations

import os
import tempfile

# Which board stands behind the link: rover_bridge's Python twin of the firmware, or the
# firmware itself (.elf) on an emulated ATmega328P (simavr; rover_bridge.twin.simavr).
ARDUINOS = ('twin', 'firmware')


def run_link_path(namespace: str = '', domain_id: str | None = None, run_id: int | None = None) -> str:
    """A link path of its own for one run of the simulated rover.

    Under $XDG_RUNTIME_DIR (else the temp dir), named after the ROS domain, the
    namespace and the run (the launching process's pid by default), so two demos
    or two namespaced sims never open each other's board. Compute it once per run
    and give the same path to the sim (`serial_link`) and the bridge (`port`).
    """
    base = os.environ.get('XDG_RUNTIME_DIR', '')
    if not (base and os.path.isdir(base) and os.access(base, os.W_OK)):
        base = tempfile.gettempdir()
    domain = os.environ.get('ROS_DOMAIN_ID', '0') if domain_id is None else str(domain_id)
    parts = ['rover_sim_arduino', f'd{domain or 0}']
    ns = namespace.strip('/').replace('/', '_')
    if ns:
        parts.append(ns)
    parts.append(str(os.getpid() if run_id is None else run_id))
    return os.path.join(base, '-'.join(parts))
