"""Model families, one module each.

Each module marks its builders with their cards (:func:`cnnlab.cards.with_card`);
:mod:`cnnlab.registry` imports every module here and collects them, so a new family
needs no other wiring.
"""
