"""The instructor's grading pipeline for ONNX and Beyond (``python -m autograder --help``)."""
