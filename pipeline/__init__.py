"""metacurate: MetaCLIP-style curation of web image-text pools.

Cores (metadata, matching, balancing, pool reading, run directories) are plain Python/NumPy/Arrow;
only `pipeline.spark` knows Spark.
"""
