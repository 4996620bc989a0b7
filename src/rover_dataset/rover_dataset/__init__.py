"""Offline: recorded rosbag2 drives -> a LeRobotDataset v3.0 for training ACT with LeRobot.

No ROS at run time: bags are read with `rosbags`, the dataset is written with pyarrow
(parquet) and PyAV (mp4), following LeRobot's own on-disk format (see lerobot_format.py).
"""
__version__ = '0.1.0'
