"""Train the bundled openfield model (DeepLabCut recipe) from a seed, on CPU.

    .venv/bin/python examples/train_openfield/train.py --out examples/train_openfield/out

Writes into --out: ``log.tsv`` (loss, learning rate, validation error over time),
``checkpoint.keras`` every --ckpt-every steps (usable if training is stopped early),
``final.keras`` (the export model: outputs ``scoremap`` and ``locref``) and
``train_info.json`` (recipe, steps, wall time, split).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "out")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-drop-at", type=float, default=0.8, help="fraction of steps (or of --time-budget-min) after which lr is /10")
    p.add_argument("--lr-drop-step", type=int, default=0, help="explicit step after which lr is /10 (overrides --lr-drop-at)")
    p.add_argument("--time-budget-min", type=float, default=0.0,
                   help="instead of a fixed schedule: drop lr at --lr-drop-at of this wall time and stop at it; "
                        "train_info.json records the steps, so `--steps N --lr-drop-step M` reproduces the run")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--last-channels", type=int, default=256)
    p.add_argument("--jit", action="store_true")
    p.add_argument("--time-steps", type=int, default=0, help="only time this many steps, then exit")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2
    import numpy as np
    import tensorflow as tf

    import augment
    import dataset
    import metrics
    import net

    cv2.setNumThreads(1)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    frames = dataset.load_labels()
    train, val = dataset.split(frames)
    train_imgs = [dataset.read_rgb(fr.name) for fr in train]
    train_xy = [fr.xy for fr in train]
    val_imgs = np.stack([dataset.read_rgb(fr.name) for fr in val]).astype(np.float32)
    val_xy = np.stack([fr.xy for fr in val])
    k = len(dataset.BODYPARTS)
    B, C, S = args.batch, args.crop, net.STRIDE
    mh = mw = -(-C // 16) * 2  # map size of the stride-8 output for a CxC input

    train_model, export_model = net.build(k, last_channels=args.last_channels)
    opt = tf.keras.optimizers.Adam(learning_rate=args.lr)
    lr_drop_step = args.lr_drop_step or int(args.steps * args.lr_drop_at)
    budget_s = args.time_budget_min * 60.0
    if budget_s:
        lr_drop_step = args.steps  # decided by the clock below

    @tf.function(jit_compile=args.jit)
    def train_step(images, scmap, locref, lw, contrast, brightness, noise_sd):
        # Photometric augmentation inside the step: contrast, brightness, Gaussian noise.
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        x = (images - mean) * contrast + mean + brightness
        x = x + tf.random.normal(tf.shape(x)) * noise_sd
        x = tf.clip_by_value(x, 0.0, 255.0)
        with tf.GradientTape() as tape:
            logits, loc = train_model(x, training=True)
            # DeepLabCut: sigmoid cross-entropy (mean over all cells) + 0.05 * Huber on locref
            # (mean over cells inside the disks).
            ce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=scmap, logits=logits))
            hub = tf.keras.losses.Huber(delta=1.0, reduction="none")
            diff = tf.abs(loc - locref)
            h = tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5) * lw
            lr_loss = tf.reduce_sum(h) / tf.maximum(tf.reduce_sum(lw), 1.0)
            loss = ce + 0.05 * lr_loss
        grads = tape.gradient(loss, train_model.trainable_variables)
        opt.apply_gradients(zip(grads, train_model.trainable_variables))
        return loss, ce, lr_loss

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def predict(x):
        s, l = export_model(x, training=False)
        return s, l

    def make_batch():
        imgs = np.empty((B, C, C, 3), np.float32)
        sc = np.empty((B, mh, mw, k), np.float32)
        lr_t = np.empty((B, mh, mw, 2 * k), np.float32)
        lw = np.empty((B, mh, mw, 2 * k), np.float32)
        for b in range(B):
            i = int(rng.integers(len(train_imgs)))
            img = train_imgs[i]
            m, mirrored = augment.random_affine(rng, train_xy[i], img.shape[:2], C)
            crop, pts = augment.warp_sample(img, train_xy[i], m, mirrored, C)
            if rng.random() < 0.2:
                crop = cv2.GaussianBlur(crop, (3, 3), 0)
            imgs[b] = crop
            sc[b], lr_t[b], lw[b] = augment.encode_targets(pts, (mh, mw), S)
        contrast = rng.uniform(0.7, 1.3, size=(B, 1, 1, 1)).astype(np.float32)
        brightness = rng.uniform(-30, 30, size=(B, 1, 1, 1)).astype(np.float32)
        noise_sd = rng.uniform(0, 8, size=(B, 1, 1, 1)).astype(np.float32)
        return imgs, sc, lr_t, lw, contrast, brightness, noise_sd

    def validate():
        errs = []
        for i in range(len(val_imgs)):
            s, l = predict(val_imgs[i : i + 1])
            pose = metrics.decode(s.numpy()[0], l.numpy()[0], S, augment.LOCREF_STDEV)
            errs.append(metrics.pose_errors(pose[:, :2], val_xy[i]))
        return metrics.summarise(np.stack(errs), dataset.BODYPARTS)

    if args.time_steps:
        for n in range(args.time_steps + 3):
            if n == 3:
                t0 = time.perf_counter(); tb = 0.0
            tb0 = time.perf_counter()
            batch = make_batch()
            if n >= 3:
                tb += time.perf_counter() - tb0
            train_step(*batch)
        dt = (time.perf_counter() - t0) / args.time_steps
        print(f"step {dt*1000:.1f} ms (batch building {tb/args.time_steps*1000:.1f} ms) at batch {B} crop {C}")
        return

    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.tsv", "w", buffering=1)
    log.write("step\telapsed_s\tlr\tloss\tce\tlocref_huber\tval_mean_px\tval_pck5\n")
    t_start = time.time()
    acc = np.zeros(3)
    n_acc = 0
    dropped = False
    for step in range(1, args.steps + 1):
        if budget_s and not dropped and time.time() - t_start >= args.lr_drop_at * budget_s:
            lr_drop_step = step - 1
        if step == lr_drop_step + 1:
            opt.learning_rate.assign(args.lr / 10)
            dropped = True
        loss, ce, lrl = train_step(*make_batch())
        acc += (float(loss), float(ce), float(lrl))
        n_acc += 1
        last = step == args.steps or (budget_s and time.time() - t_start >= budget_s)
        if step % args.ckpt_every == 0 or last:
            v = validate()
            export_model.save(args.out / ("final.keras" if last else "checkpoint.keras"))
            val_cols = f"{v['mean_px']:.3f}\t{v['pck5']:.3f}"
        else:
            val_cols = "\t"
        if step % args.log_every == 0 or last or val_cols != "\t":
            a = acc / max(n_acc, 1)
            log.write(f"{step}\t{time.time()-t_start:.1f}\t{float(opt.learning_rate.numpy()):.0e}\t{a[0]:.5f}\t{a[1]:.5f}\t{a[2]:.4f}\t{val_cols}\n")
            acc[:] = 0
            n_acc = 0
        if last:
            break
    wall = time.time() - t_start
    v = validate()
    info = {
        "seed": args.seed, "steps": step, "time_budget_min": args.time_budget_min,
        "command": f"train.py --steps {step} --lr-drop-step {lr_drop_step} --batch {B} --crop {C} --seed {args.seed}", "batch": B, "crop": C, "lr": args.lr,
        "lr_drop_step": lr_drop_step, "wall_time_s": round(wall, 1),
        "train_frames": [fr.name for fr in train], "val_frames": [fr.name for fr in val],
        "final_validation_tf": v, "params": int(export_model.count_params()),
        "tensorflow": tf.__version__,
    }
    (args.out / "train_info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info["final_validation_tf"], indent=2))


if __name__ == "__main__":
    main()
