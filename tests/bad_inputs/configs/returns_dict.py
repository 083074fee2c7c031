def get_config(arg=None):
  return {"steps": 10}
