"""Text curation cores: pool reading, ingest, matching, counting, balancing (no Spark)."""
