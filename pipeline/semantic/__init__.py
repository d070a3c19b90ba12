"""Semantic cores: open_clip embeddings and SemDeDup over them (FAISS)."""
