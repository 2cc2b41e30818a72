"""softvc task: Soft-VC voice conversion (HuBERT-Soft content units, bshall's acoustic model, hubert-pitdyn and
explicit pitch conditioning). Submodules are imported lazily by the CLI."""
