"""Mine bigrams with high pointwise mutual information from the captions of one or more pools."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_bigram_options], jobs.mine_bigrams_command)
