"""Is the data loader the bottleneck? Loader images/s vs the train step's consumption rate.

Per task (shipped shapes recipe, its train augmentations, the default worker count
`environment.num_workers`), alternating in one process:
- loader: the trainer's train loader alone, one full pass over a small train split (a finished
  pass leaves no batch in flight), images/s after the first batch;
- step: the trainer's train step (prepare_batch + train_step) on prefetched batches, images/s;
- loop: both together as the fit loop runs them (next batch, then the step), images/s.
The loader is the bottleneck when it delivers fewer images/s than the step consumes; on this
2-core machine the loader's workers and the step also share the cores, which the loop shows.
Also printed: the CPU time of one sample in this process (dataset + transforms), what a worker
pays per image.

Usage: python scripts/bench_data.py [--tasks ...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import bench_common as bc
from bench_train import TrainerLoop

# train split sizes for one loader pass (batch sizes from bench_common.TASK_RECIPES)
PASS_IMAGES = {"classification": 256, "detection": 96, "segmentation": 96}
STEPS = {"classification": 4, "detection": 3, "segmentation": 3}


def bench_task(task: str, path, overrides: list[str], rounds: int) -> list:
    overrides = [o for o in overrides if not o.startswith("data.train.num_images")]
    session = bc.load_session(path, overrides + [f"data.train.num_images={PASS_IMAGES[task]}"])
    loader = session.train_loader
    batch_size = session.recipe.training.batch_size
    epoch = itertools.count()

    def loader_pass() -> float:
        loader.sampler.set_epoch(next(epoch))
        iterator = iter(loader)
        next(iterator)
        start, count = time.perf_counter(), 0
        for batch in iterator:
            count += len(batch["images"])
        return count / (time.perf_counter() - start)

    loop = TrainerLoop(session)
    steps = STEPS[task]
    batches = list(itertools.islice(iter(loader), steps))

    def step_rate() -> float:
        start = time.perf_counter()
        loop.run(batches)
        return steps * batch_size / (time.perf_counter() - start)

    def loop_rate() -> float:
        loader.sampler.set_epoch(next(epoch))
        iterator = iter(loader)
        loop.run([next(iterator)])
        start = time.perf_counter()
        loop.run(itertools.islice(iterator, steps))
        return steps * batch_size / (time.perf_counter() - start)

    # per-sample CPU cost in this process (what each worker pays per image)
    dataset = session.train_set
    for index in range(8):  # first calls pay one-off costs
        dataset[(0, index)]
    start = time.process_time()
    for index in range(8, 40):
        dataset[(0, index)]
    sample_ms = 1000 * (time.process_time() - start) / 32

    loader_pass()  # start the persistent workers
    results: dict[str, list[float]] = {"loader": [], "step": [], "loop": []}
    order = [("loader", loader_pass), ("step", step_rate), ("loop", loop_rate)]
    step_rate()
    for index in range(rounds):
        for name, function in order if index % 2 == 0 else order[::-1]:
            results[name].append(function())
    ratio = statistics.median(a / b for a, b in zip(results["loader"], results["step"]))
    workers = session.recipe.environment.num_workers
    return [
        task, workers, sample_ms, statistics.median(results["loader"]), statistics.median(results["step"]),
        statistics.median(results["loop"]), ratio, "LOADER" if ratio < 1.0 else "model",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--rounds", type=int, default=2 if bc.quick() else 3)
    bc.add_threads_option(parser)
    args = parser.parse_args()
    bc.apply_threads(args.threads)
    print(f"bench_data: {bc.machine()}")
    rows = []
    for task, path, overrides in bc.available_tasks(args.tasks):
        start = time.perf_counter()
        rows.append(bench_task(task, path, overrides, args.rounds))
        print(f"  {task}: {time.perf_counter() - start:.0f} s")
    bc.table(rows, ["task", "workers", "ms/sample (1 proc)", "loader img/s", "step img/s", "loop img/s",
                    "loader/step", "bottleneck"], title="data loader vs train step (images/s, medians)")


if __name__ == "__main__":
    main()
