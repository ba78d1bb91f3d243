"""PyTorch baseline of `starpipe infer`: the same MLP (weights read from the model directory's
safetensors), the same inputs (normalised-spectra shards read with pyarrow, same feature rule),
the same outputs (prediction Parquet). Used by scripts/bench/infer.py.

usage: infer_torch.py MODEL_DIR SHARD_DIR OUT_DIR [--threads N] [--batch B] [--device cpu|cuda] [--dtype f32|bf16]
       infer_torch.py MODEL_DIR --network-only [--threads N] [--batch B ...] [--device cpu|cuda] [--dtype f32|bf16]
"""
import argparse, glob, json, os, struct, time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", meta
        a, b = meta["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(meta["shape"]).copy())
    return out


class Mlp(torch.nn.Module):
    """Linear → LayerNorm → ReLU per hidden layer, then Linear to [3 means, 3 log σ]."""

    def __init__(self, card, weights):
        super().__init__()
        arch = card["architecture"]
        self.layers = torch.nn.ModuleList()
        self.norms = torch.nn.ModuleList()
        width = arch["n_in"]
        for i, h in enumerate(arch["hidden"]):
            lin = torch.nn.Linear(width, h)
            lin.weight.data, lin.bias.data = weights[f"hidden.{i}.weight"], weights[f"hidden.{i}.bias"]
            self.layers.append(lin)
            ln = torch.nn.LayerNorm(h, eps=1e-5)
            if arch["layer_norm"]:
                ln.weight.data, ln.bias.data = weights[f"hidden.{i}.norm.weight"], weights[f"hidden.{i}.norm.bias"]
            self.norms.append(ln if arch["layer_norm"] else torch.nn.Identity())
            width = h
        self.out = torch.nn.Linear(width, 6)
        self.out.weight.data, self.out.bias.data = weights["output.weight"], weights["output.bias"]

    def forward(self, x):
        for lin, ln in zip(self.layers, self.norms):
            x = torch.relu(ln(lin(x)))
        return self.out(x)


def load_model(model_dir, device, dtype=torch.float32):
    card = json.load(open(os.path.join(model_dir, "model-card.json")))
    net = Mlp(card, load_safetensors(os.path.join(model_dir, "model.safetensors"))).eval().to(device, dtype)
    return card, net


def features(flux, ivar):
    ok = (ivar > 0) & np.isfinite(flux)
    return np.where(ok, np.clip(flux - 1.0, -1.0, 1.0), 0.0).astype(np.float32)


def infer(card, net, shard_dir, out_dir, batch, device, dtype=torch.float32):
    window = card["input"]["window"]
    scale = card["label_scaling"]
    mean, std = np.array(scale["mean"]), np.array(scale["std"])
    sig = np.array(card["sigma_scale"])
    os.makedirs(out_dir, exist_ok=True)
    n_total = 0
    for path in sorted(glob.glob(os.path.join(shard_dir, "spectra-*.parquet"))):
        f = pq.ParquetFile(path)
        grid = json.loads(f.metadata.metadata[b"starpipe.grid"])
        off, n = window["start"] - grid["start"], window["npix"]
        writer = None
        for rb in f.iter_batches(batch_size=batch, columns=["spectrum_id", "survey", "source_id", "flux", "ivar"]):
            npix = rb.schema.field("flux").type.list_size
            flux = rb.column("flux").values.to_numpy().reshape(-1, npix)[:, off:off + n]
            ivar = rb.column("ivar").values.to_numpy().reshape(-1, npix)[:, off:off + n]
            x = torch.from_numpy(features(flux, ivar)).to(device, dtype)
            with torch.inference_mode():
                y = net(x).float().cpu().numpy().astype(np.float64)
            value = y[:, :3] * std + mean
            err = np.exp(np.clip(y[:, 3:], -7.0, 4.0)) * std * sig
            cols = {"spectrum_id": rb.column("spectrum_id"), "survey": rb.column("survey"), "source_id": rb.column("source_id")}
            for k, p in enumerate(["teff", "logg", "feh"]):
                cols[p] = pa.array(value[:, k].astype(np.float32))
                cols[p + "_err"] = pa.array(err[:, k].astype(np.float32))
            table = pa.table(cols)
            if writer is None:
                name = os.path.basename(path).replace("spectra-", "predictions-", 1)
                writer = pq.ParquetWriter(os.path.join(out_dir, name), table.schema, compression="zstd")
            writer.write_table(table)
            n_total += len(table)
        if writer is not None:
            writer.close()
    return n_total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("shards", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, nargs="+", default=[4096])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--network-only", action="store_true")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    card, net = load_model(a.model, a.device, dtype)
    if a.network_only:
        n_in = card["architecture"]["n_in"]
        total = 16384
        i = np.arange(total * n_in, dtype=np.float64)
        x = torch.from_numpy((((i * 0.618034) % 1.0 - 0.5) * 0.4).astype(np.float32).reshape(total, n_in))
        for b in a.batch:
            def run():
                out = []
                for s in range(0, total, b):
                    with torch.inference_mode():
                        out.append(net(x[s:s + b].to(a.device, dtype)).float().cpu())
                return out
            run()  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 3.0:
                run()
                n += total
            print(json.dumps({"impl": "torch", "network": "mlp", "device": a.device, "precision": a.dtype, "batch": b,
                              "spectra_per_s": round(n / (time.perf_counter() - t0), 1)}))
        return
    t0 = time.perf_counter()
    n = infer(card, net, a.shards, a.out, a.batch[0], a.device, dtype)
    print(json.dumps({"impl": "torch", "precision": a.dtype, "spectra": n, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
