"""Text curation: ingest -> match -> count -> balance.

    spark-submit jobs/curate_text.py --pool POOL --metadata VOCAB --out DIR [--t 20000 | --target-size N]
"""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_pool_options, options.add_metadata_options, options.add_balance_options],
                     commands.curate_text_command)
