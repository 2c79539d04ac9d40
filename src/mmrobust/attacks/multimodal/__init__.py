"""Multimodal attacks: adversarial class prompts + PGD images, independent (``sep``) or cooperating
(``co-attack``). See :mod:`.base`."""
