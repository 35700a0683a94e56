"""Sample studies for a first look (``dicomweb demo``), and the synthetic whole-slide
generator they use (:mod:`dicomweb.demo.wsi_generate`, also used by tests and benchmarks)."""
