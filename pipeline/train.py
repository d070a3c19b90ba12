"""`python -m pipeline.train`: the bundled CLIP trainer (pipeline.clip.training.loop); see its --help."""

from pipeline.clip.training.loop import main

if __name__ == "__main__":
    main()
