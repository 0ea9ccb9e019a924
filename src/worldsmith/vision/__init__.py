"""Multimodal reasoning: image environments, three-level verification, vision-language policies.

``worldsmith.vision.envs`` registers the image environments (imported by the environment registry
on first lookup); ``images`` carries images as data; ``verify`` checks responses at the answer,
process and executable levels; ``vlm`` builds and runs vision-language policies. See docs/vision.md.
"""
