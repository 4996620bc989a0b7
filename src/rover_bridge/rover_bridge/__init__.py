"""Serial bridge between ROS 2 and the rover's Arduino (protocol in ../PROTOCOL.md)."""
