"""The original project's command, kept: ``python scripts/train.py exp_id=... data.subset=1 train.num_epochs=100``.

Same as ``snn-train`` (see snn_lib/cli.py and the README).
"""

from snn_lib.cli import train_main

if __name__ == "__main__":
    train_main()
