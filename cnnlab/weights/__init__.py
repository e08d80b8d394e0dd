"""Weights from the zoos (torchvision, timm, Cadene) in cnnlab's models, with identical outputs.

``cnnlab.create_model(name, weights=PATH_OR_DICT, weights_source=SOURCE)`` converts a
zoo's state dict exactly (:mod:`cnnlab.weights.convert`) and sets the release options
the weights need (:mod:`cnnlab.weights.zoo`). ``cnnlab convert`` writes the result as a
cnnlab checkpoint whose record carries the model and the preprocessing the weights
expect (:mod:`cnnlab.weights.store`); :func:`cnnlab.train.load_model` reads it back.
"""

from cnnlab.weights.classes import imagenet_class_names
from cnnlab.weights.store import convert_file
from cnnlab.weights.zoo import RELEASES, SOURCES, Preprocessing, Release, find_release

__all__ = ["RELEASES", "SOURCES", "Preprocessing", "Release", "convert_file", "find_release", "imagenet_class_names"]
