"""`python -m pipeline.vocabulary`: build the metadata vocabulary from its sources (pipeline.vocab.build); see its --help."""

from pipeline.vocab.build import main

if __name__ == "__main__":
    main()
