"""Speed measurements of slak_mm (``tools/benchmark.py``), in one home:

- :mod:`slak_mm.benchmark.op`: the large-kernel depthwise convs, every
  implementation side by side (torch only: runs on a bare GPU box);
- :mod:`slak_mm.benchmark.model`: a config's backbone or whole model in
  several variants (needs OpenMMLab);
- :mod:`slak_mm.benchmark.timing`: what both share (medians of the timing
  loop of :mod:`slak_mm.ops.timing`, the environment).

Nothing is imported here, so that ``slak_mm.benchmark.op`` imports with
torch alone.
"""
