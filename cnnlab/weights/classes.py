"""The 1000 ImageNet-1k (ILSVRC-2012) class names, in the zoos' index order.

The names are the short WordNet lemmas that Keras' ``imagenet_class_index.json``
lists (underscores as spaces); index i is output i of every zoo's classifier.
Some lemmas repeat for different synsets ("crane" the bird, 134, and the machine,
517; "maillot", 638 and 639), as they do in ImageNet itself.
"""

from __future__ import annotations

import functools
from importlib import resources

IMAGENET_1K = "imagenet-1k"


@functools.cache
def _names() -> tuple[str, ...]:
    text = resources.files("cnnlab.weights").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def imagenet_class_names() -> list[str]:
    """The 1000 class names; ``names[i]`` is the class of logit i."""
    return list(_names())
