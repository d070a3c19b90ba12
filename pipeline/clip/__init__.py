"""CLIP models (open_clip), zero-shot evaluation and the bundled trainer."""
