"""Camera publisher for the rover: V4L2, GStreamer, video files, image folders, test pattern."""
