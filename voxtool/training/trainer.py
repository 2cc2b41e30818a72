"""The one Trainer: optimisation loop, schedules, EMA, validation, checkpoints, exact resume.

Exact resume rests on one rule: everything random in step k is seeded from (seed, k, micro-step, rank).
`TrainTask.sample_batch` gets a numpy Generator seeded that way and torch's global RNG is reseeded the same
way before each step (dropout, augmentation). A run stopped at step k and resumed therefore reaches the same
weights at step n as an uninterrupted one; no loader state has to be saved.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool import console, distributed
from voxtool.devices import grad_scaler
from voxtool.errors import BadInput, Interrupted
from voxtool.fileio import load_torch, save_torch_atomic
from voxtool.training.config import TrainConfig
from voxtool.training.ema import EMA
from voxtool.training.logger import MetricLogger
from voxtool.training.modelfile import save_model_file
from voxtool.training.schedules import build_scheduler, longest_prefix, named_parameters
from voxtool.training.task import RunEnv, StepContext, TrainTask

CHECKPOINT_FORMAT = "voxtool-checkpoint"


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, micro, rank]).generate_state(1)[0])


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if hasattr(module, "module") and isinstance(
        module, torch.nn.parallel.DistributedDataParallel) else module


class Trainer:
    def __init__(self, task: TrainTask, cfg: TrainConfig, env: RunEnv, run_dir: Path | None,
                 config_dict: dict[str, Any] | None = None):
        self.task = task
        self.cfg = cfg
        self.env = env
        self.run_dir = run_dir
        self.config_dict = config_dict or {}
        self.step = 0
        self.best: dict[str, Any] = {"metric": None, "value": None, "step": None}
        self.last_metrics: dict[str, float] = {}
        self._stop_signal: int | None = None

        self.modules = task.modules()
        if "model" not in self.modules:
            raise ValueError("TrainTask.modules() must contain 'model'")
        for m in self.modules.values():
            m.to(env.device)
        self.frozen = self._freeze_groups()
        self.optimizers = task.configure_optimizers()
        for name in cfg.optimizers:
            if name not in self.optimizers:
                raise BadInput(None, f"train.optimizers.{name}: no such optimiser (this task has: "
                                     f"{', '.join(self.optimizers)})")
        self.optimizer_cfg = {k: cfg.for_optimizer(k) for k in self.optimizers}
        self.schedulers = {k: build_scheduler(o, self.optimizer_cfg[k]) for k, o in self.optimizers.items()}
        self.ema = EMA(self.modules["model"], cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.scaler = grad_scaler(env.device_spec, env.precision)
        self.wrapped = dict(self.modules)
        self.logger = MetricLogger(run_dir, enabled=env.is_rank0)
        self._saved_last_at: int | None = None
        self._prefetcher: ThreadPoolExecutor | None = None
        self._next_batches: tuple[int, Future] | None = None
        if task.manual_optimization and cfg.grad_accum > 1:
            raise BadInput(None, "train.grad_accum > 1 is not supported by this task (manual optimisation)")

    def _freeze_groups(self) -> dict[str, tuple[int, list[torch.nn.Parameter]]]:
        """`train.freeze` resolved: prefix -> (step it starts training at, -1 never; its parameters).

        Scheduled parameters start trainable so that the optimisers (and DDP) know them; `_apply_freeze`
        switches them off while their step has not come.
        """
        named = named_parameters(self.modules)
        groups = {}
        for prefix, until in self.cfg.freeze.items():
            params = [p for n, p in named.items() if longest_prefix(n, [prefix])]
            if not params:
                raise BadInput(None, f"train.freeze '{prefix}': no parameter has that name or prefix "
                                     "(names are '<module>.<parameter>', e.g. 'model.encoder')")
            for p in params:
                p.requires_grad_(True)
            groups[prefix] = (until, params)
        return groups

    def _apply_freeze(self) -> None:
        for until, params in self.frozen.values():
            trainable = until != -1 and self.step >= until
            for p in params:
                p.requires_grad_(trainable)

    def _frozen_params(self) -> list[torch.nn.Parameter]:
        return [p for _, params in self.frozen.values() for p in params if not p.requires_grad]

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything resume needs (optimisers are always in train mode between steps)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "task": self.task.name,
            "step": self.step,
            "modules": {k: unwrap(m).state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "ema": self.ema.shadow.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "best": dict(self.best),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "config": self.config_dict,
        }

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        """Restore a checkpoint loaded on the CPU; tensors move to their modules' device as they load."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or \
                state.get("task") != self.task.name:
            raise BadInput(source, f"not a {self.task.name} training checkpoint")
        try:
            for k, m in self.modules.items():
                unwrap(m).load_state_dict(state["modules"][k])
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.schedulers.items():
                s.load_state_dict(state["schedulers"][k])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.shadow.load_state_dict(state["ema"])
        except (KeyError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadInput(source, f"checkpoint does not fit this run's config (another preset or --set?): "
                                   f"{first}") from None
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = dict(state.get("best") or self.best)
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])

    def save(self, name: str) -> None:
        if self.env.is_rank0 and self.run_dir is not None:
            save_torch_atomic(self.state_dict(), self.run_dir / name)
        if name == "last.pt":
            self._saved_last_at = self.step

    def save_last(self) -> None:
        """last.pt, unless it already holds this step (a 500 MB DiffVC checkpoint is not written twice)."""
        if self._saved_last_at != self.step:
            self.save("last.pt")

    def resume(self) -> None:
        """Continue from `last.pt`. Loaded on the CPU: the RNG state must stay a CPU tensor, and each
        module, optimiser and EMA tensor moves to the training device as it is loaded."""
        path = self.run_dir / "last.pt"
        if not path.is_file():
            raise BadInput(path, "cannot resume: no last.pt in this run folder")
        self.load_state_dict(load_torch(path, map_location="cpu"), path)
        self._saved_last_at = self.step
        self.logger.truncate(self.step)  # rows a killed run logged after its last checkpoint

    def eval_model(self) -> torch.nn.Module:
        return self.ema.shadow if self.ema is not None else unwrap(self.modules["model"])

    def save_model_file(self, metrics: dict[str, float]) -> None:
        if not (self.env.is_rank0 and self.run_dir is not None):
            return
        model = self.eval_model()
        meta = {"step": self.step, "metrics": metrics, **self.task.deployable(model)}
        components = {name: (unwrap(m).state_dict(), cfg) for name, (m, cfg) in self.task.deploy_components(model).items()}
        save_model_file(self.run_dir / "model.pt", self.task.name, self.config_dict, model.state_dict(), meta,
                        components)

    # ----------------------------------------------------------------- optimisation
    def _optimizers_mode(self, mode: str) -> None:
        for o in self.optimizers.values():  # schedule-free optimisers keep separate train/eval weights
            if callable(getattr(o, "train", None)) and callable(getattr(o, "eval", None)):
                getattr(o, mode)()

    def _params(self, name: str) -> list[torch.nn.Parameter]:
        return [p for g in self.optimizers[name].param_groups for p in g["params"]]

    def optimize(self, loss: torch.Tensor, name: str = "model") -> None:
        """Manual optimisation: see `StepContext.optimize`."""
        if name not in self.optimizers:
            raise KeyError(f"no optimiser '{name}' (this task has: {', '.join(self.optimizers)})")
        self._check_finite(loss, name)
        self.optimizers[name].zero_grad(set_to_none=True)
        with torch.autocast(self.env.device.type, enabled=False):  # backward runs outside autocast
            self.scaler.scale(loss).backward()
        self._clip_and_step(name)

    def _check_finite(self, loss: torch.Tensor, name: str) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name} loss is {loss.item()} at step {self.step}")

    def _clip_and_step(self, name: str) -> None:
        opt, params = self.optimizers[name], self._params(name)
        for p in self._frozen_params():  # belt and braces: a frozen parameter never moves
            p.grad = None
        clip = self.optimizer_cfg[name].grad_clip
        if clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
        self.scaler.step(opt)

    def _seed(self, micro: int) -> int:
        return step_seed(self.env.seed, self.step, micro, self.env.rank)

    def _make_batches(self, step: int) -> list[Any]:
        """The batches of every micro-step of `step` (pure function of seed, step, micro-step and rank)."""
        return [self.task.sample_batch(step, np.random.default_rng(step_seed(self.env.seed, step, micro,
                                                                             self.env.rank)))
                for micro in range(self.cfg.grad_accum)]

    def _batches(self) -> list[Any]:
        """This step's batches; with `train.prefetch`, the next step's are built meanwhile in a worker thread.

        `sample_batch` draws its randomness only from the rng it is given, so where it runs does not change
        what it returns: prefetching keeps exact resume.
        """
        if self._prefetcher is None:
            return self._make_batches(self.step)
        if self._next_batches is not None and self._next_batches[0] == self.step:
            batches = self._next_batches[1].result()
        else:
            batches = self._make_batches(self.step)
        if self.step + 1 < self.cfg.steps:
            self._next_batches = (self.step + 1, self._prefetcher.submit(self._make_batches, self.step + 1))
        return batches

    @contextlib.contextmanager
    def prefetching(self):
        """While open (and `train.prefetch` is on), `train_step` builds the next step's batch in a worker thread."""
        if not self.cfg.prefetch or self._prefetcher is not None:
            yield
            return
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxtool-batches")
        try:
            yield
        finally:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
            self._prefetcher, self._next_batches = None, None

    def _wait_prefetch(self) -> None:
        """Let the worker finish before validation and checkpoints touch the task's data (single-threaded)."""
        if self._next_batches is not None:
            self._next_batches[1].exception()

    def train_step(self) -> dict[str, float]:
        ctx = StepContext(self.step, self.wrapped["model"], self.wrapped, self.ema.shadow if self.ema else None,
                          self.env, self)
        for m in self.modules.values():
            m.train()
        self._apply_freeze()
        manual = self.task.manual_optimization
        if not manual:  # zero before, not after: nothing left over from elsewhere leaks into this step
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        accum = self.cfg.grad_accum
        for micro, batch in enumerate(self._batches()):
            seed = self._seed(micro)
            torch.manual_seed(seed)  # dropout and other in-model randomness of this micro-step
            random.seed(seed)
            sync = micro == accum - 1 or self.env.world_size == 1
            no_sync = contextlib.nullcontext() if sync else contextlib.ExitStack()
            if not sync:
                for m in self.wrapped.values():
                    if hasattr(m, "no_sync"):
                        no_sync.enter_context(m.no_sync())
            with no_sync:
                with ctx.autocast():
                    out = self.task.training_step(batch, ctx)
                if not manual:
                    self._check_finite(out["loss"], "training")
                    self.scaler.scale(out["loss"] / accum).backward()
            for k, v in out.items():
                logged[k] = logged.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) / accum
        if not manual:
            for name in self.optimizers:
                self._clip_and_step(name)
        self.scaler.update()  # once per iteration, after every optimiser stepped
        for s in self.schedulers.values():
            s.step()
        if self.ema is not None:
            self.ema.update(unwrap(self.modules["model"]))
        self.task.after_optimizer_step(ctx)
        self.step += 1
        lrs = {name: o.param_groups[0]["lr"] for name, o in self.optimizers.items()}
        logged["lr"] = lrs.get("model", next(iter(lrs.values())))
        if len(lrs) > 1:
            logged.update({f"lr/{name}": lr for name, lr in lrs.items()})
        return logged

    # ----------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.env.is_rank0:
            # schedule-free's train->eval->train swap is not bit-exact; keep the training weights as they were
            # so that validating (or not) at a step never changes the trajectory (exact resume)
            train_weights = [p.detach().clone() for o in self.optimizers.values() if callable(getattr(o, "eval", None))
                             for g in o.param_groups for p in g["params"]]
            self._optimizers_mode("eval")
            model = self.eval_model()
            was_training = model.training
            model.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in self.task.validate(model).items()}
                clips = self.task.validation_audio(model)
            model.train(was_training)
            self.logger.log(self.step, metrics)
            self.logger.audio(self.step, clips)
            name, mode = self.task.best_metric()
            value = metrics.get(name)
            improved = value is not None and math.isfinite(value) and (
                self.best["value"] is None or (value > self.best["value"] if mode == "max" else value < self.best["value"]))
            if improved:
                self.best = {"metric": name, "value": value, "step": self.step}
            if improved or self.best["value"] is None:
                self.save_model_file(metrics)  # the deployable file follows the best (or latest) weights
            self._optimizers_mode("train")
            if train_weights:
                params = [p for o in self.optimizers.values() if callable(getattr(o, "eval", None))
                          for g in o.param_groups for p in g["params"]]
                with torch.no_grad():
                    for p, w in zip(params, train_weights):
                        p.copy_(w)
            if improved:
                self.save("best.pt")
        distributed.barrier()
        self.best = distributed.broadcast_object(self.best)
        self.last_metrics = metrics
        return metrics

    # ----------------------------------------------------------------- loop
    def _install_signals(self):
        previous = {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return previous

    def _should_stop(self) -> bool:
        flag = 1.0 if self._stop_signal is not None else 0.0
        if self.env.world_size > 1 and distributed.is_initialized():
            import torch.distributed as dist

            t = torch.tensor([flag], device=self.env.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = float(t.item())
        return flag > 0

    def wrap_ddp(self) -> None:
        """DDP around every module with trainable parameters. Parameters `train.freeze` schedules are
        trainable here, so DDP reduces them once they unfreeze; while frozen they have no gradient, which
        DDP accepts with `find_unused_parameters` (switched on by itself when `freeze` is set)."""
        if self.env.world_size > 1 and distributed.is_initialized():
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            unused = self.cfg.find_unused_parameters or bool(self.frozen)
            self.wrapped = {
                k: DDP(m, device_ids=ids, find_unused_parameters=unused)
                if any(p.requires_grad for p in m.parameters()) else m
                for k, m in self.modules.items()
            }

    def fit(self, resume: bool = False) -> dict[str, Any]:
        if resume:
            self.resume()
        self.wrap_ddp()
        self._optimizers_mode("train")
        cfg = self.cfg
        previous = self._install_signals()
        start_step, t0 = self.step, time.perf_counter()
        window: dict[str, float] = {}
        n_window = 0
        try:
            with self.prefetching(), console.progress(cfg.steps, f"train {self.task.name}", loss=float("nan"),
                                                      lr=0.0, **{"steps/s": 0.0}) as advance:
                advance(start_step)
                while self.step < cfg.steps:
                    logged = self.train_step()
                    for k, v in logged.items():
                        window[k] = window.get(k, 0.0) + v
                    n_window += 1
                    rate = (self.step - start_step) / max(1e-9, time.perf_counter() - t0)
                    advance(1, loss=logged.get("loss", float("nan")), lr=logged["lr"], **{"steps/s": rate})
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        means = {f"train/{k}": v / n_window for k, v in window.items()}
                        means = distributed.all_reduce_mean(means, self.env.device)
                        self.logger.log(self.step, means)
                        window, n_window = {}, 0
                    if self.step % cfg.valid_every == 0 or self.step == cfg.steps:
                        self._wait_prefetch()
                        metrics = self.validate()
                        if not console.progress_enabled():
                            shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                            console.log(f"step {self.step}/{cfg.steps} loss {logged.get('loss', float('nan')):.4g} "
                                        f"{shown}")
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        self.save(f"step_{self.step:08d}.pt")
                    if self.step % cfg.valid_every == 0 or self.step == cfg.steps:
                        self.save_last()
                    if self._should_stop():
                        self.save_last()
                        distributed.barrier()
                        raise Interrupted(f"stopped at step {self.step}; state saved to last.pt "
                                          "(continue with --resume)")
            self.save_last()
            distributed.barrier()
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)
            self.logger.close()
            # DDP wrappers hold the process group: released here, the group is really torn down by
            # destroy_process_group instead of at interpreter exit, where gloo's threads can abort the process
            self.wrapped = dict(self.modules)
        return {"step": self.step, "best": self.best, "metrics": self.last_metrics}
