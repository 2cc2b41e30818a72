"""diffvc: DiffVC one-shot voice conversion (Popov et al., ICLR 2022): prep (mels, GE2E d-vectors, average-voice
targets), the average-voice encoder, the diffusion decoder and its fast ML sampler, conversion.

Imports nothing heavy: the CLI plugin lives in `cli.py`, the modules are imported where used.
"""
