"""Loading and saving tokenizers from checkpoint folders without executing their code.

Only `tokenizer.json` (a declarative `tokenizers` file) and `tokenizer_config.json`
(special tokens, chat template) are read: `AutoTokenizer` runs with
`local_files_only=True` and `trust_remote_code=False`, so an `auto_map` pointing at code in
the folder is refused rather than run.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from msr_jax.checkpoints.errors import CheckpointError

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


def load_tokenizer(folder: str):
  """The folder's tokenizer (a `transformers` fast tokenizer), or None if it has none.

  With a tokenizer_config.json (special tokens, chat template) `AutoTokenizer` reads both
  files; a bare tokenizer.json is wrapped in `PreTrainedTokenizerFast` directly.
  """
  if not os.path.exists(os.path.join(folder, TOKENIZER_FILE)):
    return None
  from transformers import AutoTokenizer, PreTrainedTokenizerFast
  try:
    if not os.path.exists(os.path.join(folder, TOKENIZER_CONFIG_FILE)):
      # A bare tokenizers file (e.g. Townworld's word-level vocabulary).
      return PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, TOKENIZER_FILE))
    return AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                         trust_remote_code=False)
  except Exception as e:  # transformers raises many types; all mean "unreadable".
    raise CheckpointError(f"{os.path.join(folder, TOKENIZER_FILE)}: cannot load the "
                          f"tokenizer: {type(e).__name__}: {e}") from e


def save_tokenizer(tokenizer, folder: str) -> None:
  """Saves a `transformers` tokenizer (or a bare `tokenizers.Tokenizer`) into `folder`.

  Files are written to a temp folder beside it and moved in one by one (each move is
  atomic), so a crash never leaves a half-written tokenizer file.
  """
  if tokenizer is None:
    return
  if not hasattr(tokenizer, "save_pretrained"):
    from transformers import PreTrainedTokenizerFast
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
  tmp = tempfile.mkdtemp(dir=folder, prefix=".tmp-tokenizer-")
  try:
    tokenizer.save_pretrained(tmp)
    for name in os.listdir(tmp):
      os.replace(os.path.join(tmp, name), os.path.join(folder, name))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
