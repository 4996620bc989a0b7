"""Bringup for the rover: the node graph, the demo and the benchmark runner."""
