"""The case studies as commands (``cnnlab study``): each claim of the lecture, one command.

Every module of :mod:`cnnlab.studies.catalog` defines one ``STUDY``
(:class:`cnnlab.studies.framework.Study`); :func:`all_studies` finds them.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from cnnlab.errors import CnnlabError
from cnnlab.studies.framework import Study


def all_studies() -> dict[str, Study]:
    """Every study, by name, in alphabetical order."""
    from cnnlab.studies import catalog

    studies = {}
    for info in sorted(pkgutil.iter_modules(catalog.__path__), key=lambda i: i.name):
        study = importlib.import_module(f"{catalog.__name__}.{info.name}").STUDY
        studies[study.name] = study
    return studies


def get_study(name: str) -> Study:
    """The study called ``name``, or an error suggesting the closest names."""
    studies = all_studies()
    if name not in studies:
        close = difflib.get_close_matches(name, studies, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise CnnlabError(f"unknown study {name!r}{hint}; `cnnlab study list` shows them all")
    return studies[name]
