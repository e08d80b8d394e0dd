"""The one error type for what a user did wrong.

``cnnlab`` prints a :class:`CnnlabError` as one line and exits with status 2;
any other exception is a bug in cnnlab and shows its traceback. It subclasses
``ValueError`` (as torchvision's argument errors are), so ``except ValueError``
in user code keeps working.
"""


class CnnlabError(ValueError):
    """A user mistake: bad input, a bad option, a file that is not what it should be.

    The message says what was wrong and, where it can, what to do instead.
    """
