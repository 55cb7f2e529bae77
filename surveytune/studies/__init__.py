"""The studies: budgets and recipes, the runner that takes a run folder through its stages,
and one module per study (its :class:`~surveytune.studies.spec.StudySpec`), found by name in
:mod:`surveytune.studies.registry`."""
