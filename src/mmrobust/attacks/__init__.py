"""Attacks: image (pixel space), text (prompt words) and multimodal (both), plus the evaluation protocol.

Layout: ``image/`` holds torchattacks-style callables (``PGD(classifier, eps, alpha, steps)(images, labels)``),
``text/`` TextAttack-style parts (goal / transformation / constraints / search), ``multimodal/`` attacks
that combine both. :mod:`.protocol` is the one shape every attack takes inside an evaluation run, and
:mod:`.registry` maps the names users type (``--attack pgd,bert-attack``) to those objects.
"""
