"""Camera sources and hardware outputs (installed as ``rtpose.drivers``)."""
