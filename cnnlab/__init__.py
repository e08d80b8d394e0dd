"""cnnlab: the landmark CNNs of the classic case studies, faithful to their papers."""

from importlib.metadata import version

# The three tasks register themselves with the engine (cnnlab.train.task.TASKS) when imported.
import cnnlab.classify.task
import cnnlab.segment.task
import cnnlab.text.task
from cnnlab.analysis.profile import profile
from cnnlab.api import create_model
from cnnlab.cards import ModelCard, Paper
from cnnlab.registry import list_models, model_card, register_model
from cnnlab.train import load_checkpoint, load_model
from cnnlab.weights import imagenet_class_names

__version__ = version("cnnlab")  # pyproject.toml's, as installed

__all__ = ["ModelCard", "Paper", "create_model", "imagenet_class_names", "list_models", "load_checkpoint", "load_model",
           "model_card", "profile", "register_model"]
