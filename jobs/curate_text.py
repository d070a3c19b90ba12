"""Text curation: ingest -> match -> count -> balance.

    spark-submit jobs/curate_text.py --pool POOL --metadata VOCAB --out DIR [--t 20000 | --target-size N]
"""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_pool_options, cli.add_metadata_options, cli.add_balance_options], jobs.curate_text_command)
