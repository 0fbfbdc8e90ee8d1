"""Training pipeline: reproduces every shipped model from the data (``python -m models.training``).

Fitting and reports need numpy only; TensorFlow (the ``train`` extra) is imported only to export.
"""
