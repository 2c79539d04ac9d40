"""Retrieval attacks: perturb images and/or captions of an image–caption set so that recall drops.

See :mod:`.base` for the per-batch protocol, :mod:`.registry` for the names users type.
"""
