"""mmrobust: adversarial robustness of vision-language models.

The public API is small on purpose; each name lives in the module that owns it:

- ``mmrobust.models.load_model(spec)`` -> a :class:`~mmrobust.models.base.VisionLanguageModel`
- ``mmrobust.data.load_dataset(name, root)`` -> a labelled image dataset with class names and templates
- ``mmrobust.models.zeroshot.ZeroShotClassifier`` -> logits = scale * cos(image, class prompts)
"""

__version__ = "0.1.0"
