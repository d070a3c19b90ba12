"""`python -m pipeline.coverage`: the share of a pool's captions a vocabulary matches (pipeline.vocab.coverage); see its --help."""

from pipeline.vocab.coverage import main

if __name__ == "__main__":
    main()
