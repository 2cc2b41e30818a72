"""One Trainer for every task (see docs/architecture.md for the TrainTask contract)."""
