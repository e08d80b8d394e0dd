"""Image classification: the task that trains the ImageNet and CIFAR families (its
:class:`~cnnlab.classify.task.ImageClassification` registers itself with the engine),
and the classification loss with label smoothing and auxiliary heads."""

from cnnlab.classify.losses import classification_loss
from cnnlab.classify.task import ImageClassification

__all__ = ["ImageClassification", "classification_loss"]
