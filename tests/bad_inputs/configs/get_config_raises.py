import ml_collections


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.steps = int("ten")
  return config
