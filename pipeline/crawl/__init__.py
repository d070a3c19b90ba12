"""From crawl files to a pool: image links with their alt text, read from Common Crawl WAT or WARC files.

Spark-free: `pipeline.spark.crawl` only decides which task reads which file. Strangers wrote every byte read
here, so each bad link, record or page gets a reason and the reading goes on.
"""
