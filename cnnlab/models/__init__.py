"""Model families, one module each.

Every module in this package is imported here so that its ``@register_model``
builders are registered; a new family needs no other wiring.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
