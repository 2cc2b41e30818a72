"""Audio basics shared by every task: reading/writing, log-mel front-ends, f0."""
