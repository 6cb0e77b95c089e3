"""Imports every module that registers a non-attack suite kind (see ``suites.register_suite_kind``)."""
from symbench.bench.kinds import clever  # noqa: F401,E402  (kind "clever")
from symbench.bench.kinds import corruptions  # noqa: F401,E402  (kinds "corruptions", "corrupted_adv")
from symbench.bench.kinds import spatial  # noqa: F401,E402  (kinds "spatial", "rotation_curve", "spatial_linf")
