"""Pretrained-style encoders used as a library layer by tasks (no task imports here, and no eager imports).

- `hubert`: HuBERT-Soft content encoder (bshall/hubert layout), `HubertSoft`, `load_content_encoder`,
  `content_units`; settings in `hubert_settings` (torch-free), checkpoint formats in `hubert_checkpoint`.
- `ge2e`: GE2E speaker encoder.
"""
