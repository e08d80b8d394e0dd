"""Blocks shared by several model families."""

from cnnlab.layers.conv import ConvBnAct, he_init
from cnnlab.layers.heads import ClassicDropout, ClassifierHead, FullyConnectedHead, class_layer
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.se import SqueezeExcite
from cnnlab.layers.shortcuts import ZeroPadShortcut, make_shortcut

__all__ = ["ClassicDropout", "ClassifierHead", "ConvBnAct", "FullyConnectedHead", "LocalResponseNorm", "SqueezeExcite",
           "ZeroPadShortcut", "class_layer", "he_init", "make_shortcut"]
