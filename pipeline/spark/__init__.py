"""Spark bindings of the stages: the only package that imports pyspark."""
