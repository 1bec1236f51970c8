"""Closing the labelling loop: pick the frames the model gets wrong and hand them to DeepLabCut.

:mod:`.outliers` chooses frames (pure); :mod:`.labeled_data` writes them, with the
predictions as starting labels, into a DeepLabCut project's ``labeled-data/`` folder.
"""

from .labeled_data import collected_data, image_name, read_collected_data, write_labeled_data
from .outliers import OutlierFrame, pick_outliers

__all__ = ["OutlierFrame", "collected_data", "image_name", "pick_outliers", "read_collected_data",
           "write_labeled_data"]
