"""Mine bigrams with high pointwise mutual information from the captions of one or more pools."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_bigram_options], commands.mine_bigrams_command)
