"""Builds the word2vec training loop (cnnlab/text/word2vec_kernel.c) when cnnlab is installed.

Everything else about the package is in pyproject.toml. The extension is optional:
where no C compiler is found the install still succeeds, and ``Word2Vec`` falls back
to its PyTorch loop (cnnlab/text/native.py says why when it does). The kernel is
loaded with ctypes, not imported, so it needs no Python headers beyond what
setuptools links by default. ``-march=native`` tunes it for the machine that installs
cnnlab, which is where it runs (as the run-time build it replaces did).
"""

from setuptools import Extension, setup

# -ffast-math lets the compiler reorder the sums of the kernel's 8-float blocks;
# -mprefer-vector-width=256 keeps it from widening them to 16 floats where AVX-512 exists,
# as a 16-float load of two 8-float stores cannot be forwarded (word2vec_kernel.c).
KERNEL = Extension(
    "cnnlab.text._word2vec_kernel",
    sources=["cnnlab/text/word2vec_kernel.c"],
    extra_compile_args=["-O3", "-march=native", "-mprefer-vector-width=256", "-ffast-math"],
    libraries=["m"],
    optional=True,
)

setup(ext_modules=[KERNEL])
