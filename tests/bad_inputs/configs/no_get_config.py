import ml_collections

CONFIG = ml_collections.ConfigDict()
