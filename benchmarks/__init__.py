"""On-demand measurements behind the figures the course quotes; not part of the unit tests.

- ``python -m benchmarks``: :mod:`benchmarks.inference`, onnxruntime versus PyTorch eager and
  float32 versus int8/float16 on the course's digits MLP and CNN, written to
  ``benchmarks/results/`` as CSV and Markdown with the machine facts;
- ``python -m benchmarks.serve_bench``: the inference server against in-process onnxruntime.

Kept free of imports so that running one benchmark does not load the others' dependencies.
"""
