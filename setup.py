"""The compiled parts of the project (native/): the matcher's walk, the batch content uids and the WAT links scan,
built by `pip install` (Cython comes into pip's build environment from the registry; a C compiler and Python's
headers must be there).
Everything else is declared in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension(name, [f"native/{name}.pyx"], extra_compile_args=["-O3"])
     for name in ("metacurate_walk", "metacurate_uids", "metacurate_wat", "metacurate_links")],
    compiler_directives={"language_level": 3}))
