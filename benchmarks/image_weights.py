"""ImageNet weights against random weights: the same image network fitted on Fashion-MNIST both ways, per seed.

Each seed draws its own stratified sample of the training and test images and fits efficientnet-lite0 from the
zoo's ImageNet weights and from random weights (`model.timm_image.pretrained=false`) with the same settings, one
after the other; the table gives test accuracy (mean and spread over seeds) and fit seconds.

Example:
    python benchmarks/image_weights.py                   # 3 seeds, about 10 minutes on a 2-core CPU
    python benchmarks/image_weights.py --seeds 0 --train-rows 200 --epochs 1
"""
import argparse
import os
import platform
import shutil
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--test-rows", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--checkpoint", default="efficientnet-lite0")
    parser.add_argument("--path", default="image_weight_runs")
    args = parser.parse_args()

    import pandas as pd

    from automm_lite import Predictor
    from automm_lite.datasets import load_fashion_mnist

    start, runs = time.perf_counter(), []
    for seed in args.seeds:
        train, test = load_fashion_mnist(n_train=args.train_rows, n_test=args.test_rows, seed=seed)
        for weights, pretrained in (("ImageNet", True), ("random", False)):
            folder = f"{args.path}/{weights}-{seed}"
            predictor = Predictor(label="label", eval_metric="accuracy", path=folder, verbosity=1).fit(
                train, seed=seed, hyperparameters={
                    "model.timm_image.checkpoint_name": args.checkpoint, "model.timm_image.pretrained": pretrained,
                    "model.timm_image.image_size": args.image_size, "optimization.max_epochs": args.epochs,
                    "optim.lr": args.lr})
            runs.append({"weights": weights, "seed": seed, "accuracy": predictor.evaluate(test)["accuracy"],
                         "fit s": predictor.fit_summary()["training_time"]})
            print(runs[-1])
            shutil.rmtree(folder, ignore_errors=True)
    frame = pd.DataFrame(runs)
    table = frame.groupby("weights", sort=False).agg(seeds=("seed", "count"), accuracy=("accuracy", "mean"),
                                                     spread=("accuracy", lambda s: s.std(ddof=0)),
                                                     fit_s=("fit s", "mean"))
    print(f"\n{args.checkpoint} on Fashion-MNIST: {args.train_rows} training and {args.test_rows} test images per "
          f"seed, {args.image_size} px, {args.epochs} epochs, lr {args.lr}, seeds {args.seeds}")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(frame.pivot(index="seed", columns="weights", values="accuracy").to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; total "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
