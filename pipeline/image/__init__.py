"""Image cores: download through img2dataset, decode checks, perceptual-hash dedup, shard writing."""
