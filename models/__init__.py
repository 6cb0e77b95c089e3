"""symbench models: the registry and the seed-1 families (registered on import)."""
from symbench.models.registry import (ModelCard, TrainRecipe, UnknownModelError, create_model, get_card, list_models,
                       register_model, registered_factories, resolve_name)
from symbench.models.checkpoints import CheckpointError
from symbench.models import baseline, equivariant, gcnn_cascaded, gcnn_parallel  # noqa: F401,E402  (registration)
from symbench.models import defenses  # noqa: F401,E402  (registers the <model>+<defense> name resolver)

__all__ = ["ModelCard", "TrainRecipe", "UnknownModelError", "CheckpointError", "create_model", "get_card",
           "list_models", "register_model", "registered_factories", "resolve_name"]
