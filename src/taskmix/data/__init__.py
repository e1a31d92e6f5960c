"""The data layer: tasks, sources, mixtures, vocabularies, feature converters."""
