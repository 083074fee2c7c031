import ml_collections

def get_config(arg=None):
  config = ml_collections.ConfigDict(
  return config
