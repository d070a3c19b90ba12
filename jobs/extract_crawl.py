"""Extract a pool from crawl files: every <img> with alt text of every page in Common Crawl WAT or WARC files,
urls resolved, captions language-identified, exact duplicates dropped. curate_text reads --out as it is."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_crawl_options], commands.extract_crawl_command, run_options=None)
