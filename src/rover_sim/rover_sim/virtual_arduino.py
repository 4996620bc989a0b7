"""Moved: the virtual Arduino is rover_bridge.twin, a run's link path rover_sim.run_link.

Only rover.graph still imports run_link_path from here; delete this module when it
imports rover_sim.run_link instead.
"""
from rover_sim.run_link import run_link_path  # noqa: F401
