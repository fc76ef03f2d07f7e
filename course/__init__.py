"""course: the helpers package of ONNX and Beyond.

Conversion with verification, graph inspection, quantization, benchmarking, shared widgets and
offline data, used by every lesson and importable in your own projects (``import course``).
"""

__version__ = "0.1.0"
