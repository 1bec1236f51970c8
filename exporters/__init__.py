"""TensorFlow/DeepLabCut to ONNX exporters (installed as ``rtpose.exporters``)."""
