"""Checkpoint import and export (no module is imported here, so this package stays cheap).

- `hf`: Hugging Face folders (config.json + safetensors, sharded or not): import, export.
- `gguf_import`, `gguf_tokenizer`: llama.cpp GGUF files (dequantised) and their tokenizer.
- `native`: this project's folder (`msr_config.json` + `params.safetensors`).
- `keymap`: the name/layout tables between our parameter paths and external names.
- `params`: checked assembly of `(graphdef, params)` from named arrays.
- `safetensors_io`, `tokenizer_io`: file formats, atomic writes, safe tokenizer loading.
- `registry`: short names for checkpoints bundled in installed packages.
- `errors.CheckpointError`: the one error every reader raises.

Most callers want `msr_jax.load` / `msr_jax.forward_logits` (in `msr_jax.api`).
"""
