"""HiFi-GAN vocoder task: prep (wav + vocoder mel per item), train (LSGAN + feature matching + mel L1), infer, export."""
