"""Declares the C extensions (the decoder ``server.pprof._wire``, the stack tree index
``server.store._treeindex``, the key index ``server.store._keyindex``, the segments' byte planes
``server.store._planes``, the call tree's passes ``server.query._calltree``, the sandwich's growth
``server.query._sandwich``, the filters' passes ``server.query._filters``); all other metadata is in
pyproject.toml.

pyproject.toml cannot declare C extensions, hence this file. The builds are not
marked optional: a compiler error should fail ``pip install`` loudly rather
than leave every install silently on the decoder's slower pure-Python fallback
(the indexes have none: ``server.store.stacks``, ``samplekeys`` and ``lineframes`` need them, as
``server.query.sandwich`` and ``filters`` need theirs, and ``server.store.columncodec`` its planes).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "server.pprof._wire",
            ["server/pprof/_wire.c"],
            depends=["server/pprof/_mix.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "server.store._treeindex",
            ["server/store/_treeindex.c"],
            depends=["server/pprof/_mix.h", "server/store/_words.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "server.store._planes",
            ["server/store/_planes.c"],
            depends=["server/store/_words.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "server.store._keyindex",
            ["server/store/_keyindex.c"],
            depends=["server/pprof/_mix.h", "server/store/_words.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "server.query._calltree",
            ["server/query/_calltree.c"],
            depends=["server/store/_words.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "server.query._filters",
            ["server/query/_filters.c"],
            depends=["server/pprof/_mix.h", "server/store/_words.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "server.query._sandwich",
            ["server/query/_sandwich.c"],
            depends=["server/pprof/_mix.h", "server/store/_words.h"],
            extra_compile_args=["-O2"],
        ),
    ]
)
