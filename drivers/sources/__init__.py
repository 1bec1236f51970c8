"""Frame sources: video files, OpenCV cameras, and a synthetic camera with ground truth."""
