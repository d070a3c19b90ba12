"""The bundled CLIP trainer's parts: shard streams, optimization, checkpoints (pipeline.train runs them)."""
