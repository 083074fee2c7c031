import ml_collections

STEPS = 1 / 0


def get_config(arg=None):
  return ml_collections.ConfigDict()
