"""`python -m pipeline.train`: the bundled CLIP trainer (pipeline.clip.training); see its --help."""

from pipeline.clip.training.main import main

if __name__ == "__main__":
    main()
