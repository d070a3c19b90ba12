"""The bundled CLIP trainer, split by role as open_clip splits its own."""
