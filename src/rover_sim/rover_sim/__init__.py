"""Simulated rover hardware: vehicle model, track camera, and the sim node that drives the model
with rover_bridge's virtual Arduino."""
