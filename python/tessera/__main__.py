"""python -m tessera COMMAND ...: the Python package's commands.

  import-dcp DIR STORE CHECKPOINT   copy a DCP checkpoint directory into a store

(The C++ CLI `tessera import-dcp` runs this.) Exit codes as the CLI's: 0 ok,
2 bad usage or an unusable input, with a one-line message.
"""
import argparse
import sys

from . import _core


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tessera")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import-dcp", help="copy a DCP checkpoint directory into a store as CHECKPOINT")
    imp.add_argument("dir")
    imp.add_argument("store")
    imp.add_argument("checkpoint")
    imp.add_argument("--compression", default="auto", choices=_core.COMPRESSIONS, help="how chunks are stored")
    imp.add_argument("--batch-bytes", type=int, default=256 << 20, help="tensor bytes held in memory at once")
    imp.add_argument("--quiet", action="store_true", help="no progress bar (shown only on a terminal)")
    args = p.parse_args(argv)
    from .import_dcp import import_dcp
    try:
        r = import_dcp(args.dir, args.store, args.checkpoint, batch_bytes=args.batch_bytes,
                       compression=args.compression, progress=not args.quiet)
    except Exception as e:  # one line, like the C++ CLI
        print(f"tessera: import-dcp: {e}", file=sys.stderr)
        return 2
    print(f"imported '{args.dir}' as '{args.checkpoint}': {r.logical_bytes} bytes, "
          f"{r.chunks} chunks ({r.chunks_written} written, {r.written_bytes} bytes stored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
