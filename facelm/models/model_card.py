"""The model card template (jinja, via huggingface_hub.ModelCard): save_pretrained fills in a bare one,
facelm.model_card a full one."""

MODEL_CARD_TEMPLATE = """
---
{{ card_data }}
---

# facelm face landmark model{% if model_name %}: {{ model_name }}{% endif %}

Face landmark detector trained with [facelm](https://github.com/facelm/facelm){% if scheme %}, scheme `{{ scheme }}`{% endif %}.
{% if description %}
{{ description }}.
{% endif %}
```python
from facelm import FaceLandmarker
fl = FaceLandmarker.from_pretrained("{{ repo_id | default('path/to/this/folder', true) }}")
faces = fl.predict("photo.jpg")   # faces.landmarks: (N, K, 2) pixel coordinates
```

{% if architecture %}## Architecture
{{ architecture }}
{% endif %}
{% if training %}## Training
{{ training }}
{% endif %}
{% if metrics %}## Evaluation
{{ metrics }}
{% endif %}
{% if limitations %}## Limitations
{{ limitations }}
{% endif %}
"""
