"""Simulated rover hardware: virtual Arduino on a pseudo-terminal, vehicle model."""
