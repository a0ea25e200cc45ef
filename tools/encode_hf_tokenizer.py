#!/usr/bin/env python3
"""Token files from a Hugging Face tokenizer.json (byte-level BPE: GPT-2,
Llama 3, Qwen), for dfm-run's data.source = "tokens".

The same files as `dfm-data encode` (llm.c's format, docs/training.md: 256
little-endian int32 of header — magic 20240520, version 1 for uint16 ids or
2 for uint32, the token count — then the ids), through the `tokenizers`
package (tools/install-deps.sh puts it in .deps/python). Each input file is
one document: its ids with the tokenizer's own special tokens (Llama 3's
<|begin_of_text|>; GPT-2 adds none), after --prepend TOKEN when given
(llm.c puts GPT-2's <|endoftext|> before every document).

usage: encode_hf_tokenizer.py --tokenizer tokenizer.json --out FILE.bin [--prepend TOKEN]
                              [--no-special-tokens] TEXT...
"""
import argparse
import struct
import sys

MAGIC, HEADER_INTS = 20240520, 256


def write_token_file(path, ids):
    version = 1 if not ids or max(ids) < 65536 else 2
    header = [MAGIC, version, len(ids)] + [0] * (HEADER_INTS - 3)
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{HEADER_INTS}i", *header))
        f.write(struct.pack(f"<{len(ids)}{'H' if version == 1 else 'I'}", *ids))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer.json")
    parser.add_argument("--out", required=True, help="the token file to write")
    parser.add_argument("--prepend", help="a token (by its text) before every document, e.g. <|endoftext|>")
    parser.add_argument("--no-special-tokens", action="store_true",
                        help="leave out the tokenizer's own special tokens (its post-processor's BOS)")
    parser.add_argument("inputs", nargs="+", help="text files, one document each")
    args = parser.parse_args()
    try:
        from tokenizers import Tokenizer
    except ImportError:
        sys.exit("encode_hf_tokenizer.py: the tokenizers package is missing (tools/install-deps.sh installs it in "
                 ".deps/python; run with PYTHONPATH=.deps/python)")
    try:
        tokenizer = Tokenizer.from_file(args.tokenizer)
    except Exception as e:  # the library raises its own exception types
        sys.exit(f"encode_hf_tokenizer.py: {args.tokenizer}: not a tokenizer.json: {e}")
    prefix = []
    if args.prepend is not None:
        token = tokenizer.token_to_id(args.prepend)
        if token is None:
            sys.exit(f"encode_hf_tokenizer.py: {args.tokenizer} has no token {args.prepend!r} (--prepend)")
        prefix = [token]
    ids = []
    for path in args.inputs:
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as e:
            sys.exit(f"encode_hf_tokenizer.py: {path}: {e}")
        ids += prefix + tokenizer.encode(text, add_special_tokens=not args.no_special_tokens).ids
    write_token_file(args.out, ids)
    print(f"{args.out}: {len(ids)} tokens ({args.tokenizer}, {tokenizer.get_vocab_size()} ids) from "
          f"{len(args.inputs)} file(s)")


if __name__ == "__main__":
    main()
