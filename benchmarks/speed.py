"""Speed report for this machine, in one run: every figure is a ratio of things measured side by side.

1. The machine's torch matmul rate (GFLOP/s, float32 and bf16) on BERT-shaped matrices: the roof.
2. Teacher and student fitted on real BBC News articles; for each, every inference mode (float32, bf16 encoder,
   int8 Linear layers, ONNX float32/int8 on onnxruntime, and float32/bf16 with the encoder compiled by
   torch.compile): accuracy on the same test rows, rows/s of `evaluate` (tokenization included; the fastest of
   five interleaved rounds), achieved GFLOP/s and its share of the roof, one-row `predict` latency p50/p95, and
   the speed-up over the float32 teacher.
3. Fit time of automm_lite against a bare PyTorch loop on the same model, rows, batches, epochs and validation
   schedule (and automm_lite with bf16-mixed training).
4. `import automm_lite` time.
5. The student's float32 evaluate with glibc's default allocator settings against freed memory kept for reuse
   (`env.keep_freed_memory`, on by default), in fresh processes.
6. Images: an efficientnet-lite0 teacher and its 7-block student (`efficientnet-lite0:blocks=1`) fitted on
   Fashion-MNIST; for each, every inference mode: accuracy, images/s of `evaluate` (PNG decoding and transforms
   included), GFLOP/s of the network and its share of the float32 (or bf16) matmul roof, one-image latency; and
   the network alone in the default memory layout against channels-last (what the torch modes run on a CPU).

Example:
    python benchmarks/speed.py                 # about 15 minutes on a 2-core CPU
    python benchmarks/speed.py --quick         # a smoke run on a few rows
    python benchmarks/speed.py --only images   # part 6 (and the roof) only
"""
import argparse
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# (precision, backend, compile)
MODES = [("32", "torch", False), ("bf16", "torch", False), ("int8", "torch", False), ("32", "onnx", False),
         ("int8", "onnx", False), ("32", "torch", True), ("bf16", "torch", True)]


def import_seconds(statement: str, repeats=3) -> float:
    """Best of ``repeats`` fresh interpreters timing ``statement`` (an import)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeats))


def matmul_rate(dtype, hidden=384, intermediate=1536, tokens=4096, seconds=1.5) -> float:
    """GFLOP/s of the three matmul shapes of a BERT layer (projections, FFN in, FFN out), timed together."""
    import torch

    shapes = [(tokens, hidden, hidden), (tokens, hidden, intermediate), (tokens, intermediate, hidden)]
    pairs = [(torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for a, b in pairs:  # warm-up: kernel selection
        a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for a, b in pairs:
            a @ b
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def encoder_flops(predictor, data) -> float:
    """Forward FLOPs of the predictor's text encoder over ``data``'s real tokens (padding not counted)."""
    from automm_lite.data.batching import build_dataset

    config = predictor.model_.text_backbone.encoder.config
    dataset = build_dataset(predictor.model_, predictor.preprocessor_.transform(data))
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for s in dataset.lengths():
        total += layers * 2 * (4 * s * h * h + 2 * s * h * inner + 2 * s * s * h)
    return total


def network_flops(network, image_size: int) -> float:
    """Forward FLOPs of an image network on one image (convolutions and matmuls, torch's own count)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        network.eval()(torch.zeros(1, 3, image_size, image_size))
    return float(counter.get_total_flops())


def layout_rates(network, image_size: int, rows: int = 64, seconds: float = 2.0) -> dict:
    """Images/s of the network alone, float32 and bf16 (where native), default layout and channels-last: the
    fastest of interleaved calls on one batch of ``rows`` random images."""
    import copy

    import torch

    from automm_lite.inference.modes import bf16_supported

    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_supported(torch.device("cpu")) else [])
    variants = {}
    for dtype in dtypes:
        for layout in (torch.contiguous_format, torch.channels_last):
            net = copy.deepcopy(network).eval().to(dtype=dtype, memory_format=layout)
            images = torch.randn(rows, 3, image_size, image_size).to(dtype=dtype, memory_format=layout)
            kind = "bf16" if dtype == torch.bfloat16 else "float32"
            variants[f"{kind} {'channels-last' if layout == torch.channels_last else 'default'}"] = (net, images)
    best = dict.fromkeys(variants, float("inf"))
    with torch.inference_mode():
        for net, images in variants.values():
            net(images)  # warm-up: kernel selection
        deadline = time.perf_counter() + seconds * len(variants)
        while time.perf_counter() < deadline:
            for name, (net, images) in variants.items():
                began = time.perf_counter()
                net(images)
                best[name] = min(best[name], time.perf_counter() - began)
    return {name: rows / value for name, value in best.items()}


def image_report(args, roof: dict) -> None:
    """Part 6: the image teacher and student in every inference mode, and the layout comparison."""
    import pandas as pd

    from automm_lite import Predictor, compare_predictors
    from automm_lite.datasets import load_fashion_mnist
    from automm_lite.inference.modes import InferenceMode

    size = args.image_size
    train, test = load_fashion_mnist(n_train=args.image_train_rows, n_test=args.image_test_rows, seed=0)
    common = {"model.timm_image.image_size": size, "optimization.max_epochs": args.epochs, "optim.lr": 1e-3}
    fitted = {}
    for role, name in (("teacher", "efficientnet-lite0"), ("student", "efficientnet-lite0:blocks=1")):
        fitted[role] = Predictor(label="label", eval_metric="accuracy", path=f"{args.path}/image-{role}",
                                 verbosity=1).fit(train, hyperparameters={**common,
                                                                          "model.timm_image.checkpoint_name": name})
    predictors = {}
    for role, predictor in fitted.items():
        for precision, backend, compiled in MODES:
            requested = str(InferenceMode(precision, backend, compiled))
            copy = Predictor.load(predictor.path, verbosity=0)
            copy.optimize_for_inference(precision, backend, compile=compiled)
            if copy.inference_mode != requested:
                print(f"image {role} {requested}: not available here, runs as {copy.inference_mode}; left out")
                continue
            predictors[(role, requested)] = copy
    table = compare_predictors({f"{r} {m}": p for (r, m), p in predictors.items()}, test, repeats=args.image_repeats)
    flops = {role: network_flops(p.model_.backbones["timm_image"].network, size) for role, p in fitted.items()}
    rows = []
    for (role, mode), (_, result) in zip(predictors, table.iterrows()):
        achieved = flops[role] * len(test) / result["evaluate_s"] / 1e9
        reference = table.loc[f"{role} 32"]
        rows.append({"model": role, "mode": mode, "accuracy": result["accuracy"],
                     "acc_change_pts": 100 * (result["accuracy"] - reference["accuracy"]),
                     "images/s": result["rows_per_s"], "GFLOP/s": achieved,
                     "of_roof": achieved / roof["bf16" if mode.startswith("bf16") else "32"],
                     "one_image_p50_ms": result["one_row_p50_ms"], "one_image_p95_ms": result["one_row_p95_ms"],
                     "vs_teacher_32": result["speedup"], "vs_own_32": reference["evaluate_s"] / result["evaluate_s"]})
    params = {role: p.total_parameters / 1e6 for role, p in fitted.items()}
    print(f"\nImage inference on {len(test)} Fashion-MNIST test images at {size} px (teacher efficientnet-lite0 "
          f"{params['teacher']:.1f}M parameters, {flops['teacher'] / 1e6:.0f} MFLOP per image; student 7 blocks "
          f"{params['student']:.1f}M, {flops['student'] / 1e6:.0f} MFLOP); images/s of evaluate() incl. PNG decoding "
          "and transforms, GFLOP/s of the network, share of the matching matmul roof:")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    rates = layout_rates(fitted["teacher"].model_.backbones["timm_image"].network, size)
    print(f"\nThe teacher's network alone, 64 random {size}-px images per call (images/s, fastest of interleaved "
          "calls): " + ", ".join(f"{name} {rate:.0f}" for name, rate in rates.items()))
    print(f"channels-last / default layout: float32 {rates['float32 channels-last'] / rates['float32 default']:.2f}x"
          + (f", bf16 {rates['bf16 channels-last'] / rates['bf16 default']:.2f}x" if "bf16 default" in rates else ""))


# A fresh interpreter per run: the allocator setting is process-wide and cannot be undone.
EVALUATE_IN_A_FRESH_PROCESS = """
import sys, time
from automm_lite import Predictor
from automm_lite.datasets import load_bbc_news
path, rows, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
test = load_bbc_news(seed=0)[1]
test = test.sample(min(rows, len(test)), random_state=0)
predictor = Predictor.load(path, verbosity=0)
predictor.config_.env.keep_freed_memory = keep
predictor.predict(test.head(8))
seconds = []
for _ in range(3):
    began = time.perf_counter()
    predictor.evaluate(test)
    seconds.append(time.perf_counter() - began)
print(min(seconds))
"""


def memory_reuse_gain(path, test_rows, rounds=2) -> float:
    """float32 evaluate seconds with glibc's default allocator settings over those with freed memory kept
    (``env.keep_freed_memory``), each the fastest in fresh processes run alternately."""
    def run(keep):
        return float(subprocess.run([sys.executable, "-c", EVALUATE_IN_A_FRESH_PROCESS, path, str(test_rows),
                                     "1" if keep else "0"], capture_output=True, text=True, check=True).stdout)

    default, kept = float("inf"), float("inf")
    for _ in range(rounds):
        default, kept = min(default, run(False)), min(kept, run(True))
    return default / kept


def bare_loop_fit(checkpoint, train, tuning, label, max_len, epochs, batch_size, lr, val_every, seed=0):
    """The same fine-tuning in plain PyTorch: mean pooling + linear head, AdamW, linear warm-up then cosine,
    shuffled batches with dynamic padding, validation on the tuning rows as often as automm_lite's; returns
    (seconds, tuning accuracy)."""
    import math

    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from automm_lite.checkpoints.zoo import resolve_checkpoint

    start = time.perf_counter()
    torch.manual_seed(seed)
    folder = resolve_checkpoint(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder, add_pooling_layer=False)
    classes = sorted(train[label].unique())
    head = torch.nn.Linear(encoder.config.hidden_size, len(classes))
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-3)
    steps = epochs * math.ceil(len(train) / batch_size)
    warmup = max(1, int(0.1 * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min((step + 1) / warmup, 0.5 * (
        1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))))

    def encode(frame):
        ids = tokenizer(frame["text"].tolist(), truncation=True, max_length=max_len)
        labels = torch.tensor([classes.index(v) for v in frame[label]])
        return ids["input_ids"], labels

    def forward(rows):
        batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt")
        states = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return head((states * mask).sum(1) / mask.sum(1))

    def validate(ids, labels):
        encoder.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(ids), batch_size * 4):
                correct += (forward(ids[i:i + batch_size * 4]).argmax(1) == labels[i:i + batch_size * 4]).sum()
        encoder.train()
        return float(correct) / len(ids)

    train_ids, train_labels = encode(train)
    tune_ids, tune_labels = encode(tuning)
    generator = np.random.default_rng(seed)
    per_epoch = math.ceil(len(train) / batch_size)
    # Lightning's schedule as automm_lite sets it: a fraction of an epoch, or every N batches.
    if val_every > 1:
        check_every = int(min(val_every, per_epoch))
    else:
        check_every = per_epoch if per_epoch * val_every < 1 else int(per_epoch * val_every)
    accuracy = 0.0
    encoder.train()
    for _ in range(epochs):
        order = generator.permutation(len(train_ids))
        for step in range(per_epoch):
            rows = order[step * batch_size:(step + 1) * batch_size]
            loss = torch.nn.functional.cross_entropy(forward([train_ids[i] for i in rows]), train_labels[rows])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            if (step + 1) % check_every == 0:
                accuracy = validate(tune_ids, tune_labels)
    return time.perf_counter() - start, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="minilm-l6", help="teacher checkpoint (default minilm-l6)")
    parser.add_argument("--student", default="minilm-l3", help="student checkpoint (default minilm-l3)")
    parser.add_argument("--train-rows", type=int, default=480)
    parser.add_argument("--test-rows", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=128, help="tokens per article")
    parser.add_argument("--path", default="speed_runs", help="folder for the fitted predictors")
    parser.add_argument("--quick", action="store_true", help="a few rows and one epoch: checks the script runs")
    parser.add_argument("--only", choices=["text", "images"], help="run parts 1-5 (text) or part 6 (images) only")
    parser.add_argument("--image-train-rows", type=int, default=1000, help="Fashion-MNIST training images")
    parser.add_argument("--image-test-rows", type=int, default=300, help="Fashion-MNIST test images")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--image-repeats", type=int, default=3, help="rounds of evaluate per image predictor")
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.test_rows, args.epochs, args.image_train_rows, args.image_test_rows = 64, 32, 1, 64, 32

    import pandas as pd
    import torch
    from sklearn.model_selection import train_test_split

    from automm_lite import Predictor, compare_predictors
    from automm_lite.datasets import load_bbc_news
    from automm_lite.inference.cpu_memory import keep_freed_memory
    from automm_lite.inference.modes import InferenceMode

    start = time.perf_counter()
    # Every fit and predict below runs with the allocator setting automm_lite makes by default, the bare loop too.
    kept = keep_freed_memory()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, freed memory kept for reuse: {kept}\n")
    imported = import_seconds("import automm_lite")
    imported_predictor = import_seconds("from automm_lite import Predictor")
    roof = {"32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    print(f"Matmul roof (BERT-shaped, 4096x384x1536): float32 {roof['32']:.0f} GFLOP/s, bf16 {roof['bf16']:.0f} "
          f"GFLOP/s ({roof['bf16'] / roof['32']:.1f}x)")
    if args.only != "text":
        image_report(args, roof)
    if args.only == "images":
        print(f"Total {time.perf_counter() - start:.0f} s")
        return

    train, test = load_bbc_news(seed=0)
    train = train.sample(args.train_rows, random_state=0)
    test = test.sample(min(args.test_rows, len(test)), random_state=0)
    train, tuning = train_test_split(train, test_size=0.2, stratify=train["label"], random_state=0)
    common = {"model.hf_text.max_text_len": args.max_len, "optimization.max_epochs": args.epochs}

    def fit(name, checkpoint, extra=None):
        began = time.perf_counter()
        predictor = Predictor(label="label", eval_metric="accuracy", path=f"{args.path}/{name}", verbosity=1)
        predictor.fit(train, tuning_data=tuning, hyperparameters={
            **common, "model.hf_text.checkpoint_name": checkpoint, "optim.lr": 2e-4, **(extra or {})})
        return predictor, time.perf_counter() - began

    teacher, _ = fit("teacher", args.teacher)
    student, student_fit = fit("student", args.student)
    _, student_bf16_fit = fit("student-bf16", args.student, {"env.precision": "bf16-mixed"})
    bare = dict(checkpoint=args.student, train=train, tuning=tuning, label="label", max_len=args.max_len,
                epochs=args.epochs, batch_size=student.config_.env.per_gpu_batch_size, lr=2e-4,
                val_every=student.config_.optimization.val_check_interval)
    bare_fit, bare_accuracy = bare_loop_fit(**bare)
    # A second round of both, interleaved, and the faster of each: one 30-40 s fit on a shared machine is noisy.
    student_fit = min(student_fit, fit("student-again", args.student)[1])
    bare_fit = min(bare_fit, bare_loop_fit(**bare)[0])

    predictors, compile_seconds = {}, {}
    mode_names = [str(InferenceMode(*m)) for m in MODES]
    for role, fitted in (("teacher", teacher), ("student", student)):
        for (precision, backend, compiled), requested in zip(MODES, mode_names):
            copy = Predictor.load(fitted.path, verbosity=0)
            began = time.perf_counter()
            copy.optimize_for_inference(precision, backend, compile=compiled)
            mode = copy.inference_mode
            if mode != requested:  # this machine cannot run it (warned; e.g. no native bf16): nothing to time
                print(f"{role} {requested}: not available here, runs as {mode}; left out")
                continue
            if compiled:
                compile_seconds[f"{role} {mode}"] = time.perf_counter() - began
            predictors[(role, mode)] = copy
    table = compare_predictors({f"{r} {m}": p for (r, m), p in predictors.items()}, test, repeats=args.image_repeats)
    flops = {role: encoder_flops(fitted, test) for role, fitted in (("teacher", teacher), ("student", student))}
    rows = []
    for (role, mode), (_, result) in zip(predictors, table.iterrows()):
        roof_kind = "bf16" if mode.startswith("bf16") else "32"
        achieved = flops[role] / result["evaluate_s"] / 1e9
        reference = table.loc[f"{role} 32"]
        rows.append({"model": role, "mode": mode, "accuracy": result["accuracy"],
                     "acc_change_pts": 100 * (result["accuracy"] - reference["accuracy"]),
                     "rows/s": result["rows_per_s"], "GFLOP/s": achieved,
                     "of_roof": achieved / roof[roof_kind], "one_row_p50_ms": result["one_row_p50_ms"],
                     "one_row_p95_ms": result["one_row_p95_ms"], "vs_teacher_32": result["speedup"],
                     "vs_own_32": reference["evaluate_s"] / result["evaluate_s"]})
    report = pd.DataFrame(rows)
    params = {role: p.total_parameters for role, p in (("teacher", teacher), ("student", student))}
    print(f"\nInference on {len(test)} test articles ({args.max_len} tokens max; teacher {args.teacher} "
          f"{params['teacher'] / 1e6:.1f}M parameters, student {args.student} {params['student'] / 1e6:.1f}M); "
          "rows/s of evaluate() incl. tokenization, GFLOP/s of the encoder on real tokens, share of the matching "
          "roof (bf16 roof for bf16, float32 roof otherwise):")
    print(report.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    # A mode this machine cannot run reads as NaN in the targets below.
    student_row = report[(report.model == "student")].set_index("mode").reindex(mode_names)
    teacher_row = report[(report.model == "teacher")].set_index("mode").reindex(mode_names)
    best_one_row = student_row["one_row_p50_ms"].idxmin()
    print("\nTargets (measured in this run):")
    checks = [
        ("student float32 throughput / float32 roof", student_row.loc["32", "of_roof"], ">= 0.5"),
        ("student bf16 / float32 rows/s", student_row.loc["bf16", "vs_own_32"], ">= 2"),
        ("teacher bf16 / float32 rows/s", teacher_row.loc["bf16", "vs_own_32"], ">= 2"),
        ("student bf16 accuracy change (points)", student_row.loc["bf16", "acc_change_pts"], "within 0.5"),
        ("student bf16+compile / float32 rows/s", student_row.loc["bf16+compile", "vs_own_32"], ">= 2"),
        ("teacher bf16+compile / float32 rows/s", teacher_row.loc["bf16+compile", "vs_own_32"], ">= 2"),
        ("student bf16+compile accuracy change (points)", student_row.loc["bf16+compile", "acc_change_pts"],
         "within 0.5"),
        ("student one-row predict p50 ms, float32", student_row.loc["32", "one_row_p50_ms"], "<= 10"),
        ("student one-row predict p50 ms, bf16", student_row.loc["bf16", "one_row_p50_ms"], "<= 10"),
        (f"student one-row predict p50 ms, best mode ({best_one_row})",
         student_row.loc[best_one_row, "one_row_p50_ms"], "<= 10"),
        ("import automm_lite, milliseconds", imported * 1000, "<= 300"),
        ("from automm_lite import Predictor, milliseconds", imported_predictor * 1000, "<= 300"),
        ("automm_lite fit / bare PyTorch loop (float32)", student_fit / bare_fit, "<= 1.1"),
        ("student float32 evaluate, glibc default / freed memory kept", memory_reuse_gain(student.path, len(test)),
         "> 1"),
        ("automm_lite bf16-mixed fit / float32 fit", student_bf16_fit / student_fit, "< 1"),
    ]
    for name, value, target in checks:
        print(f"  {name:<60} {value:8.3f}   target {target}")
    print(f"\nThe hardware's own bf16 gain (bf16 / float32 matmul roof) is {roof['bf16'] / roof['32']:.2f}x: "
          "no bf16 path can go much past it.")
    if compile_seconds:
        print("Compile seconds (in optimize_for_inference, per model): " + ", ".join(
            f"{name} {seconds:.1f}" for name, seconds in compile_seconds.items()))
    tuned = student.fit_summary()["val_accuracy"]
    print(f"\nFit seconds: automm_lite {student_fit:.1f} (tuning accuracy {tuned:.3f}), "
          f"bare loop {bare_fit:.1f} (tuning accuracy {bare_accuracy:.3f}), automm_lite bf16-mixed "
          f"{student_bf16_fit:.1f}; {len(train)} training rows, {args.epochs} epochs (float32 fit and bare loop: the "
          "faster of two interleaved runs each).")
    print(f"Total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
