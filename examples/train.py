"""A training-style loop: tqdm progress and a ``loss`` metric reported to chat; the bot
tells when it finishes, or crashes with the traceback's tail.

Run it next to a bot (``lcbot run`` in the same folder, or ``LCBOT_CONFIG=…``); needs tqdm
(``pip install tqdm``). In chat, ``jobs`` or ``train`` shows the bar and the status line,
``train lr:0.01`` changes the learning rate.

    python examples/train.py [--epochs N] [--steps N]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from lcbot import job
from lcbot.job import tqdm

settings = {"lr": 0.1}


j = job.connect("train")


@j.command("lr", kind="set", pri="admin", help="set the learning rate", usage="lr:RATE")
def set_lr(ctx: job.Context) -> str:
    try:
        settings["lr"] = float(ctx.value or "")
    except ValueError:
        raise job.Fail(f"lr needs a number, not {ctx.value!r}") from None
    return f"lr is now {settings['lr']:g}"


def train(epochs: int, steps: int) -> float:
    loss = 2.0
    for epoch in range(1, epochs + 1):
        j.status(f"epoch {epoch}/{epochs}, lr {settings['lr']:g}, loss {loss:.3f}")
        for step in tqdm(range(steps), desc=f"epoch {epoch}/{epochs}"):  # reports to j
            loss = max(0.01, loss * (1 - settings["lr"] / 10) + random.uniform(-0.01, 0.01))
            if step % 10 == 0:
                j.metric("loss", loss, step=(epoch - 1) * steps + step)
            time.sleep(0.05)
    if math.isnan(loss):
        raise ValueError("loss is NaN")
    return loss


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    options = parser.parse_args()
    print(f"final loss {train(options.epochs, options.steps):.3f}")
