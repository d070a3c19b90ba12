"""The compiled part of the project: the matcher's walk (native/metacurate_walk.pyx), built by `pip install`
(Cython comes into pip's build environment from the registry; a C compiler and Python's headers must be there).
Everything else is declared in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension("metacurate_walk", ["native/metacurate_walk.pyx"], extra_compile_args=["-O3"])],
    compiler_directives={"language_level": 3}))
