"""Offline tooling: LeRobot ACT in plain PyTorch, ONNX export, INT8 calibrated from rosbags.

Nothing here needs ROS at run time; the output is a model directory (see MODEL_DIR.md)
that the policy node loads with ONNX Runtime (or HailoRT) and no PyTorch.
"""
__version__ = '0.1.0'
