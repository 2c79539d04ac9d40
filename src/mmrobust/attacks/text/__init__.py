"""Text attacks in TextAttack's shape: goal + transformation + constraints + search = recipe.

``build_text_attack("bert-attack" | "embed-sub" | "typo", model, max_words=1, candidates=10, mlm=None,
goal="embedding-kl", seed=0).attack(texts) -> list[TextAttackResult]``. Parts live in ``goals``,
``transformations``, ``constraints``, ``search``; ``mlm`` loads masked LMs (transformers, lazily);
``prompt_attack``/``eval_attacks`` apply the recipes to class prompts in evaluation runs.
"""

from .attacked_text import AttackedText, TextAttackResult
from .attacker import TextAttacker
from .recipes import RECIPES, build_text_attack

__all__ = ["AttackedText", "TextAttackResult", "TextAttacker", "RECIPES", "build_text_attack"]
