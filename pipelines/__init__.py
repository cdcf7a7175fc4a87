"""Training, registry, backtest and tuning pipelines around ``models.EncaisseModel``.

Steps are verb-first (``load_*`` -> ``validate_*`` -> ``build_*`` -> ``fit`` -> ``evaluate_*`` ->
``log_*`` -> ``promote``), configured by a validated YAML file (``pipelines.config``). Only the CLI
(``encaisse``) imports this package; ``models`` and ``features`` never do.
"""
