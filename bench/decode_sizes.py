"""The model sizes bench/decode.py decodes at, shared with bench/hf_t5.py.

Stdlib only (hf_t5.py runs beside torch, not mtf_synth). 2+2 layers, the
byte vocabulary (259 ids, padded to 384 as mesh TF pads to 128s); inputs of
`input_length` tokens, exactly `decode_length` decoded tokens per row.
  demo: gin/demo.gin's size
  512:  a compute-bound size, decoding a long target
  long: the demo's size decoding 512 tokens (where attention over the
        cache is most of a step: R against vanilla)
"""

SIZES = {
    "demo": dict(d_model=128, d_ff=512, num_heads=4, d_kv=32, batch=32,
                 input_length=64, decode_length=64),
    "512": dict(d_model=512, d_ff=2048, num_heads=8, d_kv=64, batch=16,
                input_length=64, decode_length=256),
    "long": dict(d_model=128, d_ff=512, num_heads=4, d_kv=32, batch=16,
                 input_length=64, decode_length=512),
}
VOCAB_SIZE = 384
