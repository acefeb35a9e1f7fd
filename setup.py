"""Declares the C decoder ``server.pprof._wire``; all other metadata is in pyproject.toml.

pyproject.toml cannot declare C extensions, hence this file. The build is not
marked optional: a compiler error should fail ``pip install`` loudly rather
than leave every install silently on the slower pure-Python fallback.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "server.pprof._wire",
            ["server/pprof/_wire.c"],
            extra_compile_args=["-O2"],
        )
    ]
)
