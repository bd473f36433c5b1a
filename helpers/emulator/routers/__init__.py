"""The emulator's routes, one module per resource (FastAPI's "bigger applications" layout):
``files``, ``jobs`` (fine-tuning jobs, events, checkpoints), ``models``, ``chat`` and
``deployments`` (the Azure Resource Manager deployments API); ``common`` holds what they share.
"""
