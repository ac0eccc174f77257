"""COCO 2017 shared by the SSD and Mask R-CNN references: the real on-disk layout, the
reader with the references' filters, a generator of small data in that layout, COCO
evaluation with predictions gathered across ranks, and crop-classifier pretraining for
small presets. See README.md."""
